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
    from harness import paths as hpaths
    from harness.backends import BACKENDS
    from harness.config.io import load_yaml
    from harness.tasks import TASKS

    path = Path(path)
    raw = load_yaml(path, what="suite")
    _check_keys(str(path), raw, TOP_KEYS)
    P = _Paths(path)
    name = str(raw.get("name") or path.stem)
    defaults = dict(raw.get("defaults") or {})
    _check_keys(f"{path}: defaults", defaults, DEFAULT_KEYS)
    suite_refs = P.resolve(raw.get("references"), what="references") if raw.get("references") else None

    paired_default = raw.get("paired")
    if paired_default not in (None, False):
        if not isinstance(paired_default, dict):
            raise HarnessError(f"{path}: `paired:` must be a mapping like {{backend: hf}} or false")
        _check_keys(f"{path}: paired", paired_default, PAIRED_KEYS)

    models = _as_list(f"{path}: models", raw.get("models"), allow_scalar=False)
    tasks = _as_list(f"{path}: tasks", raw.get("tasks"))
    configs = _as_list(f"{path}: configs", raw.get("configs"), allow_scalar=False)
    for what, lst in (("models", models), ("tasks", tasks), ("configs", configs)):
        if not lst:
            raise HarnessError(f"{path}: `{what}:` is empty; a suite needs at least one model, task and config")
    top_samples = _samples_list(f"{path}: samples", raw.get("samples", defaults.get("samples", 200)))

    jobs: list[Job] = []
    for mi, m in enumerate(models):
        if isinstance(m, str):
            m = {"id": m}
        if not isinstance(m, dict) or not m.get("id"):
            raise HarnessError(f"{path}: models[{mi}] needs an `id:` (the model id used in the reference YAML)")
        _check_keys(f"{path}: model {m['id']!r}", m, MODEL_KEYS)
        mpath = m.get("path") or m["id"]
        if mpath in MODEL_ALIASES:
            mpath = str(getattr(hpaths, MODEL_ALIASES[mpath]))
        else:
            found = P.resolve(mpath, must_exist=False)
            if Path(found).exists() or str(mpath).startswith((".", "/", "~", "$")):
                mpath = P.resolve(mpath, what=f"model path of {m['id']!r}")  # a local path must exist
            # else: a hub id (org/name), loaded by the backend as given
        model_spec = _spec(f"{path}: model {m['id']!r}", m.get("spec"))
        model_refs = P.resolve(m["references"], what="references") if m.get("references") else None
        ref_scores = dict(m.get("reference_scores") or {})

        for ti, t in enumerate(tasks):
            if isinstance(t, str):
                t = {"name": t}
            if not isinstance(t, dict) or not t.get("name"):
                raise HarnessError(f"{path}: tasks[{ti}] needs a `name:`")
            _check_keys(f"{path}: task {t['name']!r}", t, TASK_KEYS)
            task = t["name"]
            if task not in TASKS:
                raise one_of("task", task, list(TASKS), f"Fix `tasks:` in {path}.")
            dataset = t.get("dataset", defaults.get("dataset"))
            dataset = P.resolve(dataset, what=f"dataset of task {task!r}") if dataset else hpaths.default_dataset(task)
            task_samples = _samples_list(f"{path}: task {task!r} samples", t["samples"]) if "samples" in t \
                else top_samples
            task_refs = P.resolve(t["references"], what="references") if t.get("references") else None

            for ci, c in enumerate(configs):
                if not isinstance(c, dict) or not c.get("name") or not c.get("backend"):
                    raise HarnessError(f"{path}: configs[{ci}] needs `name:` and `backend:`")
                _check_keys(f"{path}: config {c['name']!r}", c, CONFIG_KEYS)
                if c["backend"] not in BACKENDS:
                    raise one_of("backend", c["backend"], list(BACKENDS), f"Fix config {c['name']!r} in {path}.")
                conf = c.get("config")
                if isinstance(conf, dict) or conf is None:
                    config_path, overlay = None, copy.deepcopy(conf or {})
                else:
                    config_path = P.resolve(conf, what=f"config of {c['name']!r}")
                    overlay = load_yaml(config_path)
                spec = {**model_spec, **_spec(f"{path}: config {c['name']!r}", c.get("spec"))}
                ref_score = c.get("reference_score", ref_scores.get(task))
                overrides = {}
                if isinstance(c.get("reference"), dict):  # inline reference entry with overrides
                    _check_keys(f"{path}: config {c['name']!r} reference", c["reference"], ("accuracy",) + OVERRIDE_KEYS)
                    ref_score = c["reference"].get("accuracy", ref_score)
                    overrides = {k: v for k, v in c["reference"].items() if k in OVERRIDE_KEYS}
                refs = task_refs or model_refs or suite_refs
                if ref_score is None and refs is None and not (c.get("paired", paired_default)):
                    raise HarnessError(f"{path}: job {m['id']}/{task}/{c['name']} has no reference: set `references:` "
                                       "(TRT-LLM reference YAML dir or file), a `reference_score:`, or `paired:`")
                paired = c.get("paired", paired_default)
                if paired is True:
                    paired = paired_default if isinstance(paired_default, dict) else {"backend": "hf"}
                p_backend = p_conf_path = None
                p_conf: dict = {}
                p_alpha = 0.05
                if paired:
                    if not isinstance(paired, dict):
                        raise HarnessError(f"{path}: config {c['name']!r} `paired:` must be a mapping, true or false")
                    _check_keys(f"{path}: config {c['name']!r} paired", paired, PAIRED_KEYS)
                    p_backend = paired.get("backend", "hf")
                    if p_backend not in BACKENDS:
                        raise one_of("paired backend", p_backend, list(BACKENDS), f"Fix `paired:` in {path}.")
                    pc = paired.get("config")
                    if isinstance(pc, dict):
                        p_conf = copy.deepcopy(pc)
                    elif pc:
                        p_conf_path = P.resolve(pc, what="paired config")
                        p_conf = load_yaml(p_conf_path)
                    p_alpha = float(paired.get("alpha", 0.05))
                for n in task_samples:
                    jobs.append(Job(
                        name=f"{_slug(m['id'])}/{task}/{_slug(c['name'])}/n{n if n else 'all'}",
                        model_id=str(m["id"]), model_path=str(mpath), task=task, config_name=str(c["name"]),
                        backend=c["backend"], config_path=config_path, config=overlay, samples=n,
                        seed=int(defaults.get("seed", 0)), dataset=dataset, spec=spec, references=refs,
                        reference_score=None if ref_score is None else float(ref_score),
                        reference_overrides=overrides, paired_backend=p_backend, paired_config_path=p_conf_path,
                        paired_config=p_conf, paired_alpha=p_alpha,
                        plugins=[P.resolve(x, what="plugin") for x in _as_list("plugins", c.get("plugins"))],
                        prompt_options={**(defaults.get("prompt_options") or {}), **(t.get("prompt_options") or {}),
                                        **(c.get("prompt_options") or {})},
                        sampling={**(defaults.get("sampling") or {}), **(t.get("sampling") or {}),
                                  **(c.get("sampling") or {})},
                        bisect=bool(c.get("bisect", True)),
                    ))
    names = [j.name for j in jobs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise HarnessError(f"{path}: job names repeat ({', '.join(dup)}); give every config / model a unique name")
    return Suite(name=name, path=str(path), jobs=jobs, timeout=defaults.get("timeout"),
                 max_parallel=defaults.get("max_parallel"), description=str(raw.get("description") or ""), raw=raw)
