"""Backend ``trtllm-ad``: TensorRT-LLM AutoDeploy, ``tensorrt_llm._torch.auto_deploy.LLM``.

Construction (NVIDIA/TensorRT-LLM sources read via the search tools):

* ``LLM(_TorchLLM)`` forces ``backend="_autodeploy"`` and hands every keyword argument to AD's
  ``LlmArgs`` (tensorrt_llm/_torch/auto_deploy/llm.py@01d93fe0); ``BaseLLM.__init__`` rejects a
  keyword that is not in ``LlmArgs.model_fields`` (tensorrt_llm/llmapi/llm.py).
* Config precedence we rely on (auto_deploy/utils/_config.py@16e9bea0, ``DynamicYamlMixInForSettings``):
  init kwargs > environment (``AD_<FIELD>``; unprefixed field names in older versions) > dotenv >
  secrets > YAML > field defaults, where YAML = the mode's ``default.yaml`` (or ``yaml_default``)
  deep-merged with every ``yaml_extra`` file in order, later files winning.  So **keyword arguments
  win over YAML**.  The worker environment is scrubbed of AD_* / legacy field-name variables
  (harness/execution/envscrub.py) so the environment layer is empty.
* Shortcuts: ``update_transforms_with_shortcuts`` writes an explicitly set ``compile_backend`` /
  ``attn_backend`` into ``transforms.compile_model.backend`` / ``transforms.insert_cached_attention.backend``
  (and ``transformers_replace_cached_attn.backend``), then syncs the shortcut back from the
  transform (llm_args.py@01e5db06, @3e906a0e): **shortcuts win over transforms.***.  The harness
  resolves the config the same way (harness/config/ops.py ``resolve``), so the values we pass as
  shortcut kwargs always equal the transform options in the YAML we pass -- no conflict either way.

What is passed: ``model``, ``world_size`` (always), ``compile_backend`` / ``attn_backend`` (the
resolved values) as keyword arguments, and everything else that differs from the default.yaml in
force as one ``yaml_extra`` file (exactly what a user would write), plus ``yaml_default`` when
``--default-yaml`` points at a different file than the installed one.  The LLM is used as a
context manager (``__enter__`` / ``__exit__`` -> ``shutdown()``), as the AD accuracy tests do
(tests/integration/defs/accuracy/test_llm_api_autodeploy.py@4e711b93: ``with AutoDeployLLM(...) as llm``).
Never launched under torchrun: AD spawns its own MPI workers for world_size > 1.
"""
from __future__ import annotations

import copy
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.backends.trtllm import capture as capture
from harness.backends.trtllm import common as common
from harness.backends.trtllm import logs as logs
from harness.backends.trtllm import version as tv
from harness.errors import HarnessError

SHORTCUT_KWARGS = ("compile_backend", "attn_backend")
NEVER_IN_YAML = ("model", "world_size", "yaml_extra", "yaml_default") + SHORTCUT_KWARGS


def overlay_of(cfg: dict, base: dict) -> dict:
    """The part of ``cfg`` that differs from ``base`` (what a yaml_extra must contain)."""
    out: dict = {}
    for k, v in cfg.items():
        if k not in base:
            out[k] = copy.deepcopy(v)
        elif isinstance(v, dict) and isinstance(base[k], dict):
            sub = overlay_of(v, base[k])
            if sub:
                out[k] = sub
        elif v != base[k]:
            out[k] = copy.deepcopy(v)
    return out


@dataclass
class ADPlan:
    """How the AD LLM is constructed for one resolved config (pure; see ``plan_ad``)."""

    kwargs: dict  # LLM(**kwargs); yaml_extra holds the path of the file with ``yaml_extra_content``
    yaml_extra_content: dict
    resolved: dict  # the config after renames, as AD will see it
    requested: dict  # what differs from the default.yaml in force (the user's changes)
    notes: list[str] = field(default_factory=list)


def plan_ad(model: str, config: dict, default_cfg: dict, *, valid_fields=None, backends=None,
            version: str | None = None, yaml_extra_path: str = "ad_yaml_extra.yaml",
            yaml_default: str | None = None, default_source: str = "default.yaml") -> ADPlan:
    """Keyword arguments and yaml_extra content for ``tensorrt_llm._torch.auto_deploy.LLM``.

    ``config``: a user overlay or a resolved config (resolving is idempotent); ``default_cfg``: the
    default.yaml AD will load; ``valid_fields``: AD LlmArgs field names of the installed version
    (unknown keys are refused, listing them); ``backends``: registered compile/attention backends.
    """
    from harness.config import Catalogue, resolve, validate_transform_names

    notes: list[str] = []
    cfg, n = tv.map_renamed_fields(config or {}, valid_fields, default_cfg)
    notes += n
    cfg, n = tv.check_backend_names(cfg, backends or {}, version)
    notes += n
    cfg, n = tv.keep_cuda_graph_sizes(cfg, valid_fields)
    notes += n
    user_yaml_extra = cfg.pop("yaml_extra", None)
    user_yaml_default = cfg.pop("yaml_default", None)
    if "model" in cfg:
        if str(cfg["model"]) != str(model):
            notes.append(f"config key model={cfg['model']!r} ignored: --model {model!r} is used")
        cfg.pop("model")
    tv.refuse_unknown_keys(cfg, valid_fields, "AutoDeploy LlmArgs", version)
    catalogue = Catalogue(default_cfg, default_source)
    validate_transform_names(cfg, catalogue)
    resolved = resolve(catalogue, cfg)
    base = resolve(catalogue, {})
    requested = overlay_of(resolved, base)

    kwargs: dict = {"model": model, "world_size": int(resolved.get("world_size") or 1)}
    valid = set(valid_fields) if valid_fields else None
    for sc in SHORTCUT_KWARGS:
        if resolved.get(sc) is not None and (valid is None or sc in valid):
            kwargs[sc] = resolved[sc]
    content = {k: v for k, v in requested.items() if k not in NEVER_IN_YAML}
    extra_files = []
    if user_yaml_extra:
        files = [user_yaml_extra] if isinstance(user_yaml_extra, (str, Path)) else list(user_yaml_extra)
        extra_files += [str(f) for f in files]
        notes.append(f"user yaml_extra files kept, before the harness's own: {', '.join(extra_files)}")
    if content:
        extra_files.append(str(yaml_extra_path))
    if extra_files:
        kwargs["yaml_extra"] = extra_files
    ydefault = user_yaml_default or yaml_default
    if ydefault:
        if "mode" in resolved:
            notes.append(f"yaml_default {ydefault} not passed: AD refuses mode and yaml_default together")
        else:
            kwargs["yaml_default"] = str(ydefault)
    return ADPlan(kwargs=kwargs, yaml_extra_content=content, resolved=resolved, requested=requested, notes=notes)


def _plain(v):
    """A JSON-safe copy of an LlmArgs value (pydantic models dumped, unknown objects as text)."""
    if hasattr(v, "model_dump"):
        try:
            v = v.model_dump()
        except Exception:  # noqa: BLE001 - a model that cannot dump: its text
            return str(v)
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [_plain(x) for x in v]
    return v if isinstance(v, (int, float, str, bool, type(None))) else str(v)


ENGINE_ARG_KEYS = ("compile_backend", "attn_backend", "world_size", "max_seq_len", "max_batch_size")


def _engine_args(llm, keys=()) -> dict:
    """What AD's validated LlmArgs ended up with (after env, yaml, kwargs and validators): the usual
    settings, every top-level key the config set, and each transform's validated options."""
    args = getattr(llm, "args", None)
    if args is None:
        return {}
    out = {}
    for k in dict.fromkeys(list(ENGINE_ARG_KEYS) + [k for k in keys if k != "transforms"]):
        if hasattr(args, k):
            out[k] = _plain(getattr(args, k))
    t = getattr(args, "transforms", None)
    if isinstance(t, dict):
        out["transforms"] = {n: _plain(c) for n, c in t.items() if isinstance(c, dict)}
    return out


class AutoDeployEngine(common.TrtllmEngine):
    backend_name = "trtllm-ad"

    def __init__(self, llm, plan: ADPlan, tee: capture.OutputTee, install: tv.Install, model_path: str,
                 model_note: str | None, dump_dir: str | None, workdir: str, own_workdir: bool, config: dict):
        super().__init__(llm, install, model_path)
        self.plan = plan
        self.tee = tee
        self.model_note = model_note
        self.dump_dir = dump_dir
        self.workdir = workdir
        self.own_workdir = own_workdir
        self.config = config  # as given to open(): the keys the did-it-apply table accounts for

    def info(self) -> dict:
        from harness.backends.accounting import account_config, counts
        from harness.config import load_yaml
        from harness.paths import TRTLLM_LOG_PATTERNS

        records = logs.with_not_seen(self.tee.records(), self.plan.resolved)
        eng = _engine_args(self.llm, list(self.config or {}))
        warnings = list(self.plan.notes) + self._generation_warnings()
        warnings += logs.not_applied_warnings(records, self.plan.resolved, self.plan.requested, eng)
        settings = {k: eng[k] for k in ("compile_backend", "attn_backend", "world_size") if k in eng}
        info = {
            **self._common_info(),
            "default_yaml": self.install.default_yaml,
            "model_note": self.model_note,
            "ad_kwargs": self.plan.kwargs,
            "ad_yaml_extra": self.plan.yaml_extra_content,
            "requested": self.plan.requested,
            "engine_args": {k: v for k, v in eng.items() if k != "transforms"},
            # what AD resolved, in the shape harness/bisect/effects.py compares with the requested config
            "settings": settings,
            **settings,
            "engine_enabled_transforms": [n for n, c in (eng.get("transforms") or {}).items() if c.get("enabled", True)],
            "transform_configs": eng.get("transforms") or {},
            "transforms": records,
            "transforms_summary": logs.summarize(records),
            "log_evidence": logs.find_evidence(self.tee.text(), load_yaml(TRTLLM_LOG_PATTERNS, "log patterns")),
            "dump_graphs_dir": self.dump_dir,
            "warnings": warnings,
        }
        rows = account_config(self.config or {}, info)
        info["config_accounting"] = {"rows": rows, "counts": counts(rows)}
        return info

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._shutdown_llm()
        finally:
            self.tee.stop()
            if self.own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)


class AutoDeployBackend(common.TrtllmBackend):
    name = "trtllm-ad"
    takes_ad_config = True
    def default_yaml(self, override: str | None = None) -> str:
        """The installed AD default.yaml (or --default-yaml), found without importing tensorrt_llm."""
        return str(tv.default_yaml_path(override))

    def version_key(self) -> dict:
        try:
            dy = self.default_yaml()
        except HarnessError:
            dy = None
        return common.engine_version_key(super().version_key(), dy)

    def core_alternatives(self, resolved: dict) -> list[dict]:
        """The installed version's alternatives (read from its source, no import): every other registered
        attention backend, the KV cache in ``auto`` when the config picks another dtype, every other
        registered compile backend."""
        from harness.config import load_yaml

        try:
            install = tv.discover()
            default_cfg = load_yaml(install.default_yaml, "default.yaml")
        except HarnessError:
            return []
        ab, cb = resolved.get("attn_backend"), str(resolved.get("compile_backend") or "torch-simple")
        rungs = [{"axis": "attn_backend", "from": ab, "value": n, "config": {"attn_backend": n}}
                 for n in tv.mha_attention_backends(install.backends.get("attention"), default_cfg) if n != ab]
        key, dtype = tv.kv_cache_dtype(resolved)
        if dtype and dtype != "auto":
            over = {"kv_cache_config": {"dtype": "auto"}} if key == "kv_cache_config.dtype" else {"kv_cache_dtype": "auto"}
            rungs.append({"axis": "kv_cache_dtype", "from": dtype, "value": "auto", "config": over})
        compile_order = ("torch-compile", "torch-cudagraph", "torch-opt")
        names = install.backends.get("compile") or []
        for n in [n for n in compile_order if n in names] + sorted(n for n in names if n not in compile_order):
            if n != cb:
                rungs.append({"axis": "compile_backend", "from": cb, "value": n, "config": {"compile_backend": n}})
        return rungs

    def check_config(self, config: dict, default_yaml: str | None = None) -> list[str]:
        """Orchestrator-side check (no import): unknown keys / backends / transforms raise; returns notes.

        Without tensorrt_llm installed (``--default-yaml`` only) the LlmArgs field list is unknown: the keys
        are then compared with the fields of every version read (configs/trtllm/llm_args_fields.yaml) and
        the notes say what could not be checked -- never silently skipped."""
        from harness.config import load_yaml

        install = tv.discover(default_yaml)
        default_cfg = load_yaml(install.default_yaml, "default.yaml")
        plan = plan_ad("<model>", config, default_cfg, valid_fields=install.ad_fields, backends=install.backends,
                       version=install.version, default_source=install.default_yaml)
        if install.ad_fields:
            return plan.notes
        return plan.notes + tv.unchecked_key_notes(config)

    def open(self, model: str, config: dict, context: dict | None = None) -> AutoDeployEngine:
        from harness.config import dump_yaml, load_yaml

        ctx = dict(context or {})
        common.check_not_torchrun()
        install = tv.discover(ctx.get("default_yaml"))
        installed_yaml = None
        if install.package_dir:
            p = Path(install.package_dir) / tv.DEFAULT_YAML_REL
            installed_yaml = str(p.resolve()) if p.is_file() else None
        yaml_default = install.default_yaml if install.default_yaml != installed_yaml else None
        default_cfg = load_yaml(install.default_yaml, "default.yaml")
        model_path, model_note = common.resolve_model(model)
        dump_dir = common.setup_dump_graphs(ctx)  # sets AD_DUMP_GRAPHS_DIR before tensorrt_llm is imported

        if ctx.get("work_dir"):
            workdir, own = str(Path(ctx["work_dir"]).resolve()), False
            Path(workdir).mkdir(parents=True, exist_ok=True)
        else:
            workdir, own = tempfile.mkdtemp(prefix="harness-ad-"), True
        yaml_path = str(Path(workdir) / "ad_yaml_extra.yaml")

        tee = capture.OutputTee().start()
        try:
            from tensorrt_llm._torch.auto_deploy import LLM as AutoDeployLLM

            try:  # authoritative field list from the imported pydantic model
                from tensorrt_llm._torch.auto_deploy.llm_args import LlmArgs

                valid = list(LlmArgs.model_fields)
            except Exception:  # noqa: BLE001 - fall back to the source-text list
                valid = install.ad_fields
            plan = plan_ad(model_path, config, default_cfg, valid_fields=valid, backends=install.backends,
                           version=install.version, yaml_extra_path=yaml_path, yaml_default=yaml_default,
                           default_source=install.default_yaml)
            if model_note:
                plan.notes.append(model_note)
            if plan.yaml_extra_content:
                Path(yaml_path).write_text(dump_yaml(plan.yaml_extra_content), encoding="utf-8")
            llm = AutoDeployLLM(**plan.kwargs)
            if hasattr(llm, "__enter__"):
                llm = llm.__enter__() or llm
        except BaseException:
            tee.stop()
            if own:
                shutil.rmtree(workdir, ignore_errors=True)
            raise
        return AutoDeployEngine(llm, plan, tee, install, model_path, model_note, dump_dir, workdir, own,
                                dict(config or {}))
