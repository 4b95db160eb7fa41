"""Parse a regression suite YAML (configs/nightly.yaml) into jobs: models x tasks x configs x samples.

    name: nightly-emulator
    references: references            # TRT-LLM layout: a dir with <task>.yaml, or one YAML file
    defaults: {samples: 200, seed: 0, timeout: 900, max_parallel: 1}
    paired: {backend: hf, alpha: 0.05}  # optional: reference backend on the same samples
    models:
      - id: harness/demo-tiny-llama      # key in the reference YAML
        path: demo                        # what the backend loads ("demo" = the shipped demo model)
        reference_scores: {mmlu: 61.5}    # optional inline reference (wins over `references`)
    tasks: [mmlu]                          # or [{name: mmlu, dataset: DIR, samples: [100, 400]}]
    configs:
      - {name: ad-clean, backend: ad-emulator, config: demo/ad_demo.yaml}
      - name: ad-planted
        backend: ad-emulator
        config: {transforms: {...}}       # a path or an inline AD-style overlay
        spec: {quant_algo: FP8}           # reference spec keys (TRT-LLM: dtype, quant_algo, ...)
        paired: false                     # opt out of the paired reference run
    samples: [200]                         # sample counts (default: defaults.samples)

Relative paths are resolved against the suite file's directory first, then the current
directory. Unknown keys, backends and tasks are errors that list the valid values.
"""
from __future__ import annotations

import copy
import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError, one_of
from harness.regress.jobs import Job
from harness.comparison.references import OVERRIDE_KEYS, SPEC_KEYS

TOP_KEYS = ("name", "description", "references", "defaults", "paired", "models", "tasks", "configs", "samples")
DEFAULT_KEYS = ("samples", "seed", "timeout", "max_parallel", "dataset", "prompt_options", "sampling")
MODEL_KEYS = ("id", "path", "references", "reference_scores", "spec")
TASK_KEYS = ("name", "dataset", "samples", "references", "prompt_options", "sampling")
CONFIG_KEYS = ("name", "backend", "config", "spec", "paired", "bisect", "plugins", "reference_score",
               "reference", "prompt_options", "sampling")
PAIRED_KEYS = ("backend", "config", "alpha")
MODEL_ALIASES = {"demo": "DEMO_MODEL"}


@dataclass
class Suite:
    name: str
    path: str
    jobs: list[Job]
    timeout: float | None = None
    max_parallel: int | None = None
    description: str = ""
    raw: dict = field(default_factory=dict)

    def select(self, patterns: list[str] | None) -> "Suite":
        """Only jobs whose name matches one of the fnmatch patterns (--only)."""
        if not patterns:
            return self
        keep = [j for j in self.jobs if any(fnmatch.fnmatch(j.name, p) or p in j.name for p in patterns)]
        if not keep:
            raise HarnessError(f"--only {' '.join(patterns)} matches no job; jobs: {', '.join(j.name for j in self.jobs)}")
        return Suite(self.name, self.path, keep, self.timeout, self.max_parallel, self.description, self.raw)

    def override_samples(self, samples: int) -> "Suite":
        """Every job at ``samples`` samples, its name's n<count> suffix to match (--samples smoke runs).
        Changes the jobs in place."""
        if samples <= 0:
            raise HarnessError(f"--samples must be a positive integer, got {samples}")
        for j in self.jobs:
            j.samples = samples
            j.name = f"{j.name.rsplit('/n', 1)[0]}/n{samples}"
        names = [j.name for j in self.jobs]
        if len(set(names)) != len(names):
            raise HarnessError("--samples makes job names collide (the suite lists several sample counts); "
                               "add --only to pick one")
        return self


def _check_keys(where: str, d: dict, allowed: tuple) -> None:
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise HarnessError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid: {', '.join(allowed)}. "
                           "Fix the suite YAML.")


def _as_list(where: str, v, allow_scalar=True) -> list:
    if v is None:
        return []
    if isinstance(v, list):
        return v
    if allow_scalar:
        return [v]
    raise HarnessError(f"{where}: expected a list, got {type(v).__name__}")


class _Paths:
    def __init__(self, suite_path: Path):
        self.base = suite_path.resolve().parent

    def resolve(self, p: str | None, must_exist: bool = True, what: str = "path") -> str | None:
        if p is None:
            return None
        p = os.path.expandvars(os.path.expanduser(str(p)))
        cand = Path(p)
        if cand.is_absolute():
            if must_exist and not cand.exists():
                raise HarnessError(f"{what} {p!r} does not exist; fix the path in the suite")
            return str(cand)
        for base in (self.base, Path.cwd()):
            if (base / cand).exists():
                return str((base / cand).resolve())
        if must_exist:
            raise HarnessError(f"{what} {p!r} not found relative to {self.base} or {Path.cwd()}; fix the path "
                               "in the suite (relative paths are resolved against the suite file's directory)")
        return str((self.base / cand).resolve())


def _samples_list(where: str, v) -> list[int | None]:
    out = []
    for s in _as_list(where, v):
        if s is None or s == "all":
            out.append(None)
            continue
        if not isinstance(s, int) or isinstance(s, bool) or s <= 0:
            raise HarnessError(f"{where}: sample count {s!r} must be a positive integer (or 'all'); fix `samples:`")
        out.append(s)
    return out


def _spec(where: str, spec) -> dict:
    spec = dict(spec or {})
    _check_keys(f"{where} spec", spec, SPEC_KEYS)
    return spec


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in str(s))


def load_suite(path: str | os.PathLike) -> Suite:
    """Parse and validate a suite YAML; expand it to jobs (models x tasks x configs x samples)."""
    path = Path(path)
    raw = _load_raw(path)
    ctx = _context(path, raw)
    jobs = [job for mi, m in enumerate(ctx.models) for job in _model_jobs(ctx, mi, m)]
    _check_unique_names(path, jobs)
    return Suite(name=str(raw.get("name") or path.stem), path=str(path), jobs=jobs,
                 timeout=ctx.defaults.get("timeout"), max_parallel=ctx.defaults.get("max_parallel"),
                 description=str(raw.get("description") or ""), raw=raw)


# -- file and suite-wide sections ----------------------------------------------------------------

@dataclass
class _Context:
    """The suite-wide settings every model / task / config entry is expanded against."""
    path: Path
    paths: _Paths
    defaults: dict
    references: str | None  # suite-level `references:` (resolved)
    paired: dict | bool | None  # suite-level `paired:` (the configs' default)
    models: list
    tasks: list
    configs: list
    samples: list[int | None]  # top-level sample counts (tasks may override)


def _load_raw(path: Path) -> dict:
    from harness.config.io import load_yaml

    raw = load_yaml(path, what="suite")
    _check_keys(str(path), raw, TOP_KEYS)
    return raw


def _context(path: Path, raw: dict) -> _Context:
    paths = _Paths(path)
    defaults = dict(raw.get("defaults") or {})
    _check_keys(f"{path}: defaults", defaults, DEFAULT_KEYS)
    suite_refs = paths.resolve(raw.get("references"), what="references") if raw.get("references") else None
    paired_default = _paired_default(path, raw.get("paired"))
    models, tasks, configs = _sections(path, raw)
    samples = _samples_list(f"{path}: samples", raw.get("samples", defaults.get("samples", 200)))
    return _Context(path, paths, defaults, suite_refs, paired_default, models, tasks, configs, samples)


def _paired_default(path: Path, paired):
    if paired not in (None, False):
        if not isinstance(paired, dict):
            raise HarnessError(f"{path}: `paired:` must be a mapping like {{backend: hf}} or false")
        _check_keys(f"{path}: paired", paired, PAIRED_KEYS)
    return paired


def _sections(path: Path, raw: dict) -> tuple[list, list, list]:
    models = _as_list(f"{path}: models", raw.get("models"), allow_scalar=False)
    tasks = _as_list(f"{path}: tasks", raw.get("tasks"))
    configs = _as_list(f"{path}: configs", raw.get("configs"), allow_scalar=False)
    for what, lst in (("models", models), ("tasks", tasks), ("configs", configs)):
        if not lst:
            raise HarnessError(f"{path}: `{what}:` is empty; a suite needs at least one model, task and config")
    return models, tasks, configs


# -- models and tasks ----------------------------------------------------------------------------

@dataclass
class _Model:
    entry: dict
    id: str
    path: str  # what the backend loads
    spec: dict
    references: str | None
    reference_scores: dict


@dataclass
class _Task:
    entry: dict
    name: str
    dataset: str | None
    samples: list[int | None]
    references: str | None


def _model_jobs(ctx: _Context, mi: int, m) -> list[Job]:
    """Every job of one model entry (its tasks x the configs x sample counts), in suite order."""
    model = _model(ctx, mi, m)
    jobs: list[Job] = []
    for ti, t in enumerate(ctx.tasks):
        task = _task(ctx, ti, t)
        for ci, c in enumerate(ctx.configs):
            jobs += _config_jobs(ctx, model, task, ci, c)
    return jobs


def _model(ctx: _Context, mi: int, m) -> _Model:
    path = ctx.path
    if isinstance(m, str):
        m = {"id": m}
    if not isinstance(m, dict) or not m.get("id"):
        raise HarnessError(f"{path}: models[{mi}] needs an `id:` (the model id used in the reference YAML)")
    _check_keys(f"{path}: model {m['id']!r}", m, MODEL_KEYS)
    model_path = _model_path(ctx.paths, m)
    model_spec = _spec(f"{path}: model {m['id']!r}", m.get("spec"))
    model_refs = ctx.paths.resolve(m["references"], what="references") if m.get("references") else None
    return _Model(m, str(m["id"]), model_path, model_spec, model_refs, dict(m.get("reference_scores") or {}))


def _model_path(paths: _Paths, m: dict) -> str:
    """An alias ("demo"), a local path (must exist) or a hub id (org/name, loaded as given)."""
    from harness import paths as hpaths

    mpath = m.get("path") or m["id"]
    if mpath in MODEL_ALIASES:
        return str(getattr(hpaths, MODEL_ALIASES[mpath]))
    found = paths.resolve(mpath, must_exist=False)
    if Path(found).exists() or str(mpath).startswith((".", "/", "~", "$")):
        return str(paths.resolve(mpath, what=f"model path of {m['id']!r}"))  # a local path must exist
    return str(mpath)  # a hub id (org/name), loaded by the backend as given


def _task(ctx: _Context, ti: int, t) -> _Task:
    from harness import paths as hpaths
    from harness.tasks import TASKS

    path = ctx.path
    if isinstance(t, str):
        t = {"name": t}
    if not isinstance(t, dict) or not t.get("name"):
        raise HarnessError(f"{path}: tasks[{ti}] needs a `name:`")
    _check_keys(f"{path}: task {t['name']!r}", t, TASK_KEYS)
    task = t["name"]
    if task not in TASKS:
        raise one_of("task", task, list(TASKS), f"Fix `tasks:` in {path}.")
    dataset = t.get("dataset", ctx.defaults.get("dataset"))
    dataset = ctx.paths.resolve(dataset, what=f"dataset of task {task!r}") if dataset else hpaths.default_dataset(task)
    samples = _samples_list(f"{path}: task {task!r} samples", t["samples"]) if "samples" in t else ctx.samples
    refs = ctx.paths.resolve(t["references"], what="references") if t.get("references") else None
    return _Task(t, task, dataset, samples, refs)


# -- configs -------------------------------------------------------------------------------------

@dataclass
class _Paired:
    backend: str | None = None
    config_path: str | None = None
    config: dict = field(default_factory=dict)
    alpha: float = 0.05


def _config_jobs(ctx: _Context, model: _Model, task: _Task, ci: int, c) -> list[Job]:
    """One job per sample count for this model x task x config entry."""
    _check_config(ctx, ci, c)
    config_path, overlay = _config_overlay(ctx, c)
    spec = {**model.spec, **_spec(f"{ctx.path}: config {c['name']!r}", c.get("spec"))}
    ref_score, overrides = _inline_reference(ctx, c, model.reference_scores.get(task.name))
    refs = task.references or model.references or ctx.references
    if ref_score is None and refs is None and not (c.get("paired", ctx.paired)):
        raise HarnessError(f"{ctx.path}: job {model.entry['id']}/{task.name}/{c['name']} has no reference: set "
                           "`references:` (TRT-LLM reference YAML dir or file), a `reference_score:`, or `paired:`")
    paired = _paired(ctx, c)
    return [Job(
        name=f"{_slug(model.id)}/{task.name}/{_slug(c['name'])}/n{n if n else 'all'}",
        model_id=model.id, model_path=model.path, task=task.name, config_name=str(c["name"]),
        backend=c["backend"], config_path=config_path, config=overlay, samples=n,
        seed=int(ctx.defaults.get("seed", 0)), dataset=task.dataset, spec=spec, references=refs,
        reference_score=None if ref_score is None else float(ref_score),
        reference_overrides=overrides, paired_backend=paired.backend, paired_config_path=paired.config_path,
        paired_config=paired.config, paired_alpha=paired.alpha,
        plugins=[ctx.paths.resolve(x, what="plugin") for x in _as_list("plugins", c.get("plugins"))],
        prompt_options=_layered(ctx.defaults, task.entry, c, "prompt_options"),
        sampling=_layered(ctx.defaults, task.entry, c, "sampling"),
        bisect=bool(c.get("bisect", True)),
    ) for n in task.samples]


def _check_config(ctx: _Context, ci: int, c) -> None:
    from harness.backends import BACKENDS

    if not isinstance(c, dict) or not c.get("name") or not c.get("backend"):
        raise HarnessError(f"{ctx.path}: configs[{ci}] needs `name:` and `backend:`")
    _check_keys(f"{ctx.path}: config {c['name']!r}", c, CONFIG_KEYS)
    if c["backend"] not in BACKENDS:
        raise one_of("backend", c["backend"], list(BACKENDS), f"Fix config {c['name']!r} in {ctx.path}.")


def _config_overlay(ctx: _Context, c: dict) -> tuple[str | None, dict]:
    """(config file, overlay): an inline mapping (copied) or a YAML file (loaded)."""
    from harness.config.io import load_yaml

    conf = c.get("config")
    if isinstance(conf, dict) or conf is None:
        return None, copy.deepcopy(conf or {})
    config_path = ctx.paths.resolve(conf, what=f"config of {c['name']!r}")
    return config_path, load_yaml(config_path)


def _inline_reference(ctx: _Context, c: dict, model_score) -> tuple:
    """(reference score, overrides): the config's `reference_score` / `reference:` entry, else the
    model's `reference_scores` for the task."""
    ref_score = c.get("reference_score", model_score)
    overrides = {}
    if isinstance(c.get("reference"), dict):  # inline reference entry with overrides
        _check_keys(f"{ctx.path}: config {c['name']!r} reference", c["reference"], ("accuracy",) + OVERRIDE_KEYS)
        ref_score = c["reference"].get("accuracy", ref_score)
        overrides = {k: v for k, v in c["reference"].items() if k in OVERRIDE_KEYS}
    return ref_score, overrides


def _paired(ctx: _Context, c: dict) -> _Paired:
    """The paired reference run of a config (`paired:` on the config, else the suite's)."""
    from harness.backends import BACKENDS
    from harness.config.io import load_yaml

    paired = c.get("paired", ctx.paired)
    if paired is True:
        paired = ctx.paired if isinstance(ctx.paired, dict) else {"backend": "hf"}
    if not paired:
        return _Paired()
    if not isinstance(paired, dict):
        raise HarnessError(f"{ctx.path}: config {c['name']!r} `paired:` must be a mapping, true or false")
    _check_keys(f"{ctx.path}: config {c['name']!r} paired", paired, PAIRED_KEYS)
    out = _Paired(backend=paired.get("backend", "hf"))
    if out.backend not in BACKENDS:
        raise one_of("paired backend", out.backend, list(BACKENDS), f"Fix `paired:` in {ctx.path}.")
    pc = paired.get("config")
    if isinstance(pc, dict):
        out.config = copy.deepcopy(pc)
    elif pc:
        out.config_path = ctx.paths.resolve(pc, what="paired config")
        out.config = load_yaml(out.config_path)
    out.alpha = float(paired.get("alpha", 0.05))
    return out


def _layered(defaults: dict, task: dict, config: dict, key: str) -> dict:
    """`key` (prompt_options / sampling) merged: suite defaults < task < config."""
    return {**(defaults.get(key) or {}), **(task.get(key) or {}), **(config.get(key) or {})}


def _check_unique_names(path: Path, jobs: list[Job]) -> None:
    names = [j.name for j in jobs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise HarnessError(f"{path}: job names repeat ({', '.join(dup)}); give every config / model a unique name")
