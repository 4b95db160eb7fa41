"""What TensorRT-LLM is installed, read from its files *without importing it*.

The orchestrator (bisect, plan, cache keys) must not import ``tensorrt_llm``: importing it initialises
CUDA/MPI and takes tens of seconds.  Everything here reads the installed package's source text:

* where the package is: ``importlib.util.find_spec("tensorrt_llm").submodule_search_locations``
  (finding a top-level package does not execute it);
* its version: ``importlib.metadata`` for the distribution that owns that directory, else the
  ``__version__ = "..."`` line of ``tensorrt_llm/version.py`` (NVIDIA/TensorRT-LLM
  tensorrt_llm/version.py@000a01de: ``__version__ = "1.0.0rc4"``);
* the AD pipeline default: ``tensorrt_llm/_torch/auto_deploy/config/default.yaml`` -- the file AD's
  ``LlmArgs._get_yaml_default_from_mode("graph")`` returns
  (tensorrt_llm/_torch/auto_deploy/llm_args.py@01e5db06, @3e906a0e:
  ``files("tensorrt_llm._torch.auto_deploy.config") / "default.yaml"``; its shape, a ``transforms:``
  mapping of name -> {stage, enabled, options}, read at @0034d905);
* the top-level keys AD accepts: the pydantic field names of AD's ``LlmArgs`` and its bases, parsed
  with ``ast`` from ``_torch/auto_deploy/llm_args.py``, ``llmapi/llm_args.py`` and
  ``_torch/auto_deploy/utils/_config.py`` (``yaml_default`` / ``yaml_extra``).  AD's LlmArgs is
  ``extra="forbid"`` (llm_args.py@01e5db06 ``_get_config_dict``) and ``BaseLLM.__init__`` rejects
  keyword arguments that are not ``llm_args_cls.model_fields`` (tensorrt_llm/llmapi/llm.py), so an
  unknown key would only fail after minutes of model loading; the worker re-checks against the
  imported ``LlmArgs.model_fields`` (authoritative);
* the registered compile / attention backends: the names in
  ``@CompileBackendRegistry.register("torch-cudagraph")`` / ``@AttentionRegistry.register("...")``
  decorators under ``_torch/auto_deploy`` (compile/backends/torch_simple.py and friends).

Fields renamed across versions (tensorrt_llm/_torch/auto_deploy/llm_args.py@3e906a0e, AutoDeployConfig era,
vs @01e5db06, merged era):

* AutoDeployConfig era: shortcut fields ``free_mem_ratio`` (-> ``transforms.resize_kv_cache.free_mem_ratio``)
  and ``cuda_graph_batch_sizes`` (-> ``transforms.compile_model.cuda_graph_batch_sizes``), compile
  default ``torch-compile``;
* merged era: ``kv_cache_config.free_gpu_memory_fraction`` and ``cuda_graph_config.batch_sizes``
  (copied into ``compile_model.cuda_graph_batch_sizes`` by ``sync_cuda_graph_batch_sizes_to_compile_config``),
  compile default ``torch-cudagraph``.

``map_renamed_fields`` rewrites a config written for one era into the names the installed version
knows, and says what it did.
"""
from __future__ import annotations

import ast
import copy
import difflib
import functools
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError

PACKAGE = "tensorrt_llm"
DEFAULT_YAML_REL = Path("_torch") / "auto_deploy" / "config" / "default.yaml"
AD_LLM_ARGS_REL = Path("_torch") / "auto_deploy" / "llm_args.py"
LLMAPI_ARGS_REL = Path("llmapi") / "llm_args.py"
AD_CONFIG_MIXIN_REL = Path("_torch") / "auto_deploy" / "utils" / "_config.py"
AD_DIR_REL = Path("_torch") / "auto_deploy"

# --default-yaml PATH is passed to every process of a run (orchestrator, cache-key computation, worker)
# through this variable; it is not an AD_* variable, so the worker environment scrub keeps it.
DEFAULT_YAML_ENV = "HARNESS_AD_DEFAULT_YAML"

INSTALL_HINT = ('Install TensorRT-LLM (pip install "harness[trtllm]"), or pass --default-yaml PATH pointing at '
                "tensorrt_llm/_torch/auto_deploy/config/default.yaml of your source checkout.")

# old top-level shortcut -> (new nested parent, new nested key)
RENAMED_FIELDS = {
    "free_mem_ratio": ("kv_cache_config", "free_gpu_memory_fraction"),
    "cuda_graph_batch_sizes": ("cuda_graph_config", "batch_sizes"),
}
# transform options the old shortcuts wrote into (llm_args.py@3e906a0e _TRANSFORMS_SHORTCUT_LOOKUP)
OLD_SHORTCUT_TRANSFORM_KEYS = {
    "free_mem_ratio": ("resize_kv_cache", "free_mem_ratio"),
    "cuda_graph_batch_sizes": ("compile_model", "cuda_graph_batch_sizes"),
}
# attention backend names that changed: the older triton paged backend was registered as "triton",
# newer versions register "triton_paged" (the attn_backend values of auto_deploy/llm_args.py@16e9bea0 and
# tests/integration/defs/accuracy/test_llm_api_autodeploy.py@4e711b93).
ATTN_BACKEND_ALIASES = {"triton": "triton_paged", "triton_paged": "triton"}


def package_dir() -> Path | None:
    """Directory of the ``tensorrt_llm`` package that ``import tensorrt_llm`` would load, or None."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locs = list(spec.submodule_search_locations or [])
    return Path(locs[0]).resolve() if locs else None


def _version_from_source(pkg: Path) -> str | None:
    f = pkg / "version.py"
    if not f.is_file():
        return None
    m = re.search(r"""__version__\s*=\s*["']([^"']+)["']""", f.read_text(encoding="utf-8", errors="replace"))
    return m.group(1) if m else None


def installed_version(pkg: Path | None = None) -> str | None:
    """Version of the package ``import tensorrt_llm`` would load (never imports it)."""
    pkg = pkg if pkg is not None else package_dir()
    if pkg is None:
        return None
    for dist_name in ("tensorrt_llm", "tensorrt-llm"):
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            continue
        try:  # only trust the metadata if that distribution owns the directory we found
            owned = Path(str(dist.locate_file(PACKAGE))).resolve()
        except Exception:  # noqa: BLE001 - odd metadata layouts
            owned = None
        if owned == pkg:
            return dist.version
    return _version_from_source(pkg)


def set_default_yaml_override(path: str | Path | None) -> None:
    """What ``--default-yaml PATH`` does: every later lookup (and every worker) uses PATH."""
    import os

    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise HarnessError(f"--default-yaml {str(path)!r} does not exist. Pass the path of "
                               "tensorrt_llm/_torch/auto_deploy/config/default.yaml.")
        os.environ[DEFAULT_YAML_ENV] = str(p.resolve())
    else:
        os.environ.pop(DEFAULT_YAML_ENV, None)


def default_yaml_override() -> str | None:
    import os

    return os.environ.get(DEFAULT_YAML_ENV) or None


def default_yaml_path(override: str | Path | None = None) -> Path:
    """The AD default.yaml in force: ``override``, else $HARNESS_AD_DEFAULT_YAML (--default-yaml), else
    the installed package's file."""
    override = override or default_yaml_override()
    if override:
        p = Path(override).expanduser()
        if not p.is_file():
            raise HarnessError(f"--default-yaml {str(override)!r} does not exist. Pass the path of "
                               "tensorrt_llm/_torch/auto_deploy/config/default.yaml.")
        return p.resolve()
    pkg = package_dir()
    if pkg is None:
        raise HarnessError(f"backend trtllm-ad needs TensorRT-LLM, but tensorrt_llm is not importable. {INSTALL_HINT}")
    p = pkg / DEFAULT_YAML_REL
    if not p.is_file():
        raise HarnessError(f"installed tensorrt_llm at {pkg} has no {DEFAULT_YAML_REL} (AutoDeploy missing in this "
                           f"version?). {INSTALL_HINT}")
    return p


# ----------------------------------------------------------------------------------------------
# LlmArgs field names from source text
# ----------------------------------------------------------------------------------------------

def _parse_classes(path: Path) -> dict[str, ast.ClassDef]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError):
        return {}
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


def _base_name(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return expr.attr
    if isinstance(expr, ast.Subscript):  # Generic[...] etc.
        return _base_name(expr.value)
    return None


def _is_classvar(ann: ast.expr) -> bool:
    name = _base_name(ann)
    return name == "ClassVar"


def _class_fields(cls: ast.ClassDef) -> list[str]:
    out = []
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
            if name.startswith("_") or name == "model_config" or _is_classvar(node.annotation):
                continue
            out.append(name)
    return out


def llm_args_fields(pkg: Path | None = None, class_name: str = "LlmArgs") -> list[str] | None:
    """Field names of AD's ``LlmArgs`` (own + inherited), read with ``ast``; None when not found."""
    pkg = pkg if pkg is not None else package_dir()
    if pkg is None or not (pkg / AD_LLM_ARGS_REL).is_file():
        return None
    classes: dict[str, ast.ClassDef] = {}
    for rel in (AD_CONFIG_MIXIN_REL, LLMAPI_ARGS_REL, AD_LLM_ARGS_REL):  # later files win on name clashes
        classes.update(_parse_classes(pkg / rel))
    if class_name not in classes:
        return None
    return _inherited_fields(classes, class_name)


def _inherited_fields(classes: dict[str, ast.ClassDef], class_name: str) -> list[str]:
    """Fields of ``class_name`` and of every base found in ``classes``, own fields first, no repeats."""
    fields: list[str] = []
    seen: set[str] = set()

    def walk(name: str) -> None:
        if name in seen or name not in classes:
            return
        seen.add(name)
        cls = classes[name]
        for f in _class_fields(cls):
            if f not in fields:
                fields.append(f)
        for b in cls.bases:
            bn = _base_name(b)
            if bn:
                walk(bn)

    walk(class_name)
    return fields


def torch_llm_args_fields(pkg: Path | None = None) -> list[str] | None:
    """Field names of the PyTorch backend's ``TorchLlmArgs`` (llmapi/llm_args.py), read with ``ast``."""
    pkg = pkg if pkg is not None else package_dir()
    if pkg is None or not (pkg / LLMAPI_ARGS_REL).is_file():
        return None
    classes = _parse_classes(pkg / LLMAPI_ARGS_REL)
    if "TorchLlmArgs" not in classes:
        return None
    return _inherited_fields(classes, "TorchLlmArgs")


_REGISTER_RE = {
    "compile": re.compile(r"""CompileBackendRegistry\.register\(\s*["']([\w\-]+)["']"""),
    "attention": re.compile(r"""AttentionRegistry\.register\(\s*["']([\w\-]+)["']"""),
}


def registered_backends(pkg: Path | None = None) -> dict[str, list[str]]:
    """{"compile": [...], "attention": [...]} registered in the installed AD sources ({} if unknown)."""
    pkg = pkg if pkg is not None else package_dir()
    if pkg is None or not (pkg / AD_DIR_REL).is_dir():
        return {}
    return _registered_backends_cached(str(pkg))


@functools.lru_cache(maxsize=8)
def _registered_backends_cached(pkg: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {k: [] for k in _REGISTER_RE}
    for py in sorted((Path(pkg) / AD_DIR_REL).rglob("*.py")):
        try:
            text = py.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if "Registry.register(" not in text:
            continue
        for kind, rx in _REGISTER_RE.items():
            for name in rx.findall(text):
                if name not in found[kind]:
                    found[kind].append(name)
    return {k: v for k, v in found.items() if v}


def api_era(fields: list[str] | None) -> str:
    """ "autodeploy_config" (free_mem_ratio / cuda_graph_batch_sizes shortcuts), "merged", or "unknown"."""
    if not fields:
        return "unknown"
    if "free_mem_ratio" in fields or "cuda_graph_batch_sizes" in fields:
        return "autodeploy_config"
    return "merged"


@dataclass
class Install:
    """The TensorRT-LLM installation as seen from its files."""

    package_dir: str | None
    version: str | None
    default_yaml: str | None
    default_yaml_overridden: bool
    ad_fields: list[str] | None
    torch_fields: list[str] | None
    era: str
    backends: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "package_dir": self.package_dir, "version": self.version, "default_yaml": self.default_yaml,
            "default_yaml_overridden": self.default_yaml_overridden, "era": self.era,
            "compile_backends": self.backends.get("compile"), "attn_backends": self.backends.get("attention"),
        }


def discover(yaml_override: str | Path | None = None, require_yaml: bool = True) -> Install:
    """Everything the harness needs to know about the installed engine, without importing it."""
    pkg = package_dir()
    yaml_path = None
    try:
        yaml_path = str(default_yaml_path(yaml_override))
    except HarnessError:
        if require_yaml:
            raise
    ad_fields = llm_args_fields(pkg)
    return Install(
        package_dir=str(pkg) if pkg else None,
        version=installed_version(pkg),
        default_yaml=yaml_path,
        default_yaml_overridden=bool(yaml_override or default_yaml_override()),
        ad_fields=ad_fields,
        torch_fields=torch_llm_args_fields(pkg),
        era=api_era(ad_fields),
        backends=registered_backends(pkg),
    )


# ----------------------------------------------------------------------------------------------
# Renamed fields and key validation (pure)
# ----------------------------------------------------------------------------------------------

def map_renamed_fields(config: dict, valid_fields: list[str] | set[str] | None,
                       default_cfg: dict | None = None) -> tuple[dict, list[str]]:
    """``config`` with fields renamed across versions mapped to what the installed LlmArgs knows.

    Returns (new config, human-readable notes).  Does nothing when the valid fields are unknown.
    """
    if not valid_fields:
        return copy.deepcopy(config), []
    valid = set(valid_fields)
    cfg = copy.deepcopy(config)
    notes: list[str] = []
    transforms = cfg.get("transforms") or {}
    default_transforms = (default_cfg or {}).get("transforms") or {}
    for old, (parent, key) in RENAMED_FIELDS.items():
        t_name, t_key = OLD_SHORTCUT_TRANSFORM_KEYS[old]
        if old in valid:
            # installed = AutoDeployConfig era: new nested spelling -> old shortcut
            nested = cfg.get(parent)
            if isinstance(nested, dict) and key in nested:
                value = nested.pop(key)
                if cfg.get(old) is None:
                    cfg[old] = value
                    notes.append(f"{parent}.{key} -> {old} (the installed version spells it {old})")
                else:
                    notes.append(f"{parent}.{key} dropped: {old}={cfg[old]!r} is set and is what this version reads")
                if nested and parent not in valid:
                    notes.append(f"{parent}.{', '.join(sorted(nested))} dropped: the installed version has no "
                                 f"{parent}")
                if not nested or parent not in valid:
                    cfg.pop(parent, None)
        elif old in cfg:
            # installed = merged era: old shortcut -> nested field
            value = cfg.pop(old)
            if parent not in valid:
                raise HarnessError(f"config key {old!r} is not known to the installed TensorRT-LLM and neither is its "
                                   f"newer spelling {parent}.{key}. Remove {old}.")
            nested = cfg.setdefault(parent, {}) if isinstance(cfg.get(parent), dict) or parent not in cfg else None
            if nested is None:
                raise HarnessError(f"config key {parent} must be a mapping to receive {old}; got {cfg[parent]!r}.")
            if value is not None and key not in nested:
                nested[key] = value
            notes.append(f"{old} -> {parent}.{key} (renamed in the installed version)")
        # the old shortcut's transform option, when the installed default.yaml no longer has it
        tconf = transforms.get(t_name)
        if (old not in valid and isinstance(tconf, dict) and t_key in tconf
                and t_key not in (default_transforms.get(t_name) or {})
                and old == "free_mem_ratio"):
            value = tconf.pop(t_key)
            nested = cfg.setdefault(parent, {})
            if value is not None and key not in nested:
                nested[key] = value
            notes.append(f"transforms.{t_name}.{t_key} -> {parent}.{key} (the installed default.yaml has no "
                         f"{t_name}.{t_key})")
    return cfg, notes


def unknown_keys(config: dict, valid_fields: list[str] | set[str] | None) -> list[str]:
    if not valid_fields:
        return []
    valid = set(valid_fields)
    return [k for k in config if k not in valid]


def refuse_unknown_keys(config: dict, valid_fields: list[str] | set[str] | None, what: str, version: str | None) -> None:
    """HarnessError naming the first unknown top-level key, close matches, and every valid key."""
    bad = unknown_keys(config, valid_fields)
    if not bad:
        return
    valid = sorted(set(valid_fields or []))
    k = bad[0]
    close = difflib.get_close_matches(k, valid, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    others = f" (also unknown: {', '.join(bad[1:])})" if len(bad) > 1 else ""
    raise HarnessError(f"config key {k!r}{others} is not a field of {what} in the installed TensorRT-LLM "
                       f"{version or '(version unknown)'}.{hint} Valid keys: {', '.join(valid)}")


def check_backend_names(config: dict, backends: dict[str, list[str]], version: str | None) -> tuple[dict, list[str]]:
    """Refuse compile/attention backend names the installed version does not register; map known renames."""
    cfg = copy.deepcopy(config)
    notes: list[str] = []
    transforms = cfg.get("transforms") or {}
    checks = [
        ("compile", "compile_backend", [("compile_model", "backend")]),
        ("attention", "attn_backend", [("insert_cached_attention", "backend"),
                                       ("transformers_replace_cached_attn", "backend")]),
    ]
    for kind, shortcut, places in checks:
        known = backends.get(kind)
        if not known:
            continue
        slots = [(cfg, shortcut, shortcut)] + [(transforms.get(t), o, f"transforms.{t}.{o}") for t, o in places]
        for holder, key, label in slots:
            if not isinstance(holder, dict) or holder.get(key) is None:
                continue
            value = holder[key]
            if value in known:
                continue
            alias = ATTN_BACKEND_ALIASES.get(value) if kind == "attention" else None
            if alias and alias in known:
                holder[key] = alias
                notes.append(f"{label}: {value} -> {alias} (name registered by the installed version)")
                continue
            raise HarnessError(f"{label}={value!r} is not a {kind} backend registered by the installed TensorRT-LLM "
                               f"{version or ''}; valid: {', '.join(known)}")
    return cfg, notes


def keep_cuda_graph_sizes(config: dict, valid_fields) -> tuple[dict, list[str]]:
    """Keep a user's ``transforms.compile_model.cuda_graph_batch_sizes`` from being overwritten (merged era).

    AD's ``sync_cuda_graph_batch_sizes_to_compile_config`` (auto_deploy/llm_args.py@01e5db06, @16e9bea0)
    writes ``cuda_graph_config.batch_sizes`` over ``transforms.compile_model.cuda_graph_batch_sizes``
    whenever that list is non-empty -- and it is non-empty by default: ``cuda_graph_config`` defaults to
    ``CudaGraphConfig()``, whose validator generates sizes up to 128 when none are given
    (llmapi/llm_args.py).  So the user's list is copied into ``cuda_graph_config.batch_sizes``, where AD
    reads it; when both are set and differ, AD's precedence is reported.
    """
    valid = set(valid_fields or [])
    if "cuda_graph_config" not in valid or "cuda_graph_batch_sizes" in valid:
        return config, []
    t = ((config.get("transforms") or {}).get("compile_model") or {})
    sizes = t.get("cuda_graph_batch_sizes") if isinstance(t, dict) else None
    if not sizes:
        return config, []
    cfg = copy.deepcopy(config)
    cg = cfg.get("cuda_graph_config")
    if cg is not None and not isinstance(cg, dict):
        return cfg, []
    cg = dict(cg or {})
    if cg.get("batch_sizes") and [int(x) for x in cg["batch_sizes"]] != [int(x) for x in sizes]:
        return cfg, [f"transforms.compile_model.cuda_graph_batch_sizes {list(sizes)} is overwritten by AD with "
                     f"cuda_graph_config.batch_sizes {list(cg['batch_sizes'])} (that is the list AD uses)"]
    if not cg.get("batch_sizes"):
        cg["batch_sizes"] = list(sizes)
        cfg["cuda_graph_config"] = cg
        return cfg, [f"transforms.compile_model.cuda_graph_batch_sizes {list(sizes)} also set as "
                     "cuda_graph_config.batch_sizes (AD overwrites the transform option with that list, which is "
                     "filled by default)"]
    return cfg, []


# Registry entries that are not multi-head attention kernels: the cache backends of the other
# insert_cached_* transforms (MLA, SSM, causal conv, delta rule, residual add). Names registered with
# AttentionRegistry.register in NVIDIA/TensorRT-LLM tensorrt_llm/_torch/auto_deploy/custom_ops/ include
# trtllm_mla, MultiHeadLatentAttention, torch_causal_conv, cuda_causal_conv, torch_gated_delta,
# cached_residual_add; default.yaml@dc325380 names flashinfer_mla, triton_ssm, fla_delta, fla_gated_delta.
_NOT_MHA = re.compile(r"(mla|latent|ssm|mamba|causal_conv|conv|delta|residual)", re.IGNORECASE)
ATTN_PREFERENCE = ("trtllm", "flashinfer", "torch", "triton_paged", "triton")


def mha_attention_backends(registered: list[str] | None, default_cfg: dict | None = None) -> list[str]:
    """The registered attention backends ``attn_backend`` can select (multi-head attention kernels),
    in a stable order: AD's usual ones first, then the rest alphabetically."""
    others = set()
    for name, conf in ((default_cfg or {}).get("transforms") or {}).items():
        if name.startswith("insert_cached_") and name != "insert_cached_attention" and isinstance(conf, dict):
            if conf.get("backend"):
                others.add(str(conf["backend"]))
    names = [n for n in (registered or []) if n not in others and not _NOT_MHA.search(n)]
    return [n for n in ATTN_PREFERENCE if n in names] + sorted(n for n in names if n not in ATTN_PREFERENCE)


def kv_cache_dtype(resolved: dict) -> tuple[str | None, str | None]:
    """(config key, KV-cache dtype) of a resolved config: ``kv_cache_config.dtype`` (merged era) or the
    ``kv_cache_dtype`` field (AutoDeployConfig era, llm_args.py@3e906a0e); (None, None) when unset."""
    kv = resolved.get("kv_cache_config")
    if isinstance(kv, dict) and kv.get("dtype") is not None:
        return "kv_cache_config.dtype", str(kv["dtype"])
    if resolved.get("kv_cache_dtype") is not None:
        return "kv_cache_dtype", str(resolved["kv_cache_dtype"])
    return None, None


def unchecked_key_notes(config: dict) -> list[str]:
    """Notes for a config that cannot be checked against the installed LlmArgs (tensorrt_llm not
    installed): keys unknown to every version read (configs/trtllm/llm_args_fields.yaml), with close
    matches, and a reminder that the worker checks the installed version's fields."""
    from harness.config import load_yaml
    from harness.paths import TRTLLM_KNOWN_FIELDS

    data = load_yaml(TRTLLM_KNOWN_FIELDS, "known LlmArgs fields")
    known = set(data.get("mixin") or []) | set(data.get("torch_llm_args_subset") or [])
    for fields in (data.get("ad_own") or {}).values():
        known |= set(fields)
    keys = [k for k in (config or {}) if k not in ("plugins", "transforms")]  # transform names: the default.yaml's
    notes = [f"tensorrt_llm is not installed here: the {len(keys)} top-level config key(s) besides transforms are "
             "checked against AD LlmArgs fields of the versions read, not the installed one (the worker checks that)"]
    for k in keys:
        if k not in known:
            close = difflib.get_close_matches(k, sorted(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            notes.append(f"config key {k!r} is not an LlmArgs field in any TensorRT-LLM version read{hint}")
    return notes
