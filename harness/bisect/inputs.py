"""Validate and resolve the bisect command's inputs (every bad input -> one HarnessError line).

Nothing here evaluates a model. ``resolve_inputs(args)`` returns a ``BisectInputs`` with the
user config loaded, the knob catalogue of the default.yaml in force, the ablation plan, the
reference score, and the run directory chosen; ``build_plan`` turns it into the phase plan.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError, one_of
from harness.evaluation.rundir import check_out_dir

EXECUTORS = ("local", "inprocess", "slurm")


@dataclass
class BisectInputs:
    model: str
    task: str
    config_path: str | None
    user_config: dict
    dataset: str | None
    samples: int | None
    seed: int
    backend_ref: str
    backend: str
    strategy: str
    out_root: Path
    catalogue: object = None
    default_yaml: str | None = None
    reference_score: float | None = None
    reference_source: str | None = None
    reference_sigma: float = 50.0
    reference_alpha: float = 0.05  # the references entry's alpha (TensorRT-LLM's per-entry override)
    cache_dir: str = ".harness"
    use_cache: bool = True
    eval_timeout: float | None = 1800
    max_parallel: int | str = 1  # or "auto" (harness/execution/slots.py)
    quiet: bool = False
    dry_run: bool = False
    ablation: object = None
    unquantized_model: str | None = None
    plugins: list[str] = field(default_factory=list)
    plugin_transforms: list[str] = field(default_factory=list)
    aa_repeats: int = 0
    alpha: float = 0.05
    min_effect: float = 1.0
    executor: str = "local"
    prompt_options: dict = field(default_factory=dict)
    quant: dict = field(default_factory=dict)
    moe: bool | None = None
    config_notes: list[str] = field(default_factory=list)  # the candidate backend's check_config notes
    reference_protocol: str = "auto"  # harness/bisect/protocol.py
    localize: bool = True  # Phase 4's layer-wise localization (--no-localize); not part of the run's identity

    def identity(self) -> dict:
        """What makes two bisect runs the same run (the run directory name hashes it)."""
        return {"model": str(Path(self.model).resolve()) if Path(self.model).exists() else self.model,
                "task": self.task, "config": self.user_config, "dataset": self.dataset, "samples": self.samples,
                "seed": self.seed, "backend_ref": self.backend_ref, "backend": self.backend,
                "strategy": self.strategy, "ablation": self.ablation.to_dict() if self.ablation else None,
                "unquantized_model": self.unquantized_model, "plugins": self.plugins, "aa_repeats": self.aa_repeats,
                "alpha": self.alpha, "min_effect": self.min_effect, "default_yaml": self.default_yaml,
                "prompt_options": self.prompt_options, "reference_score": self.reference_score,
                **({"reference_protocol": self.reference_protocol} if self.reference_protocol != "auto" else {})}

    def to_dict(self) -> dict:
        d = self.identity()
        d.update({"model": self.model, "config_path": self.config_path, "reference_source": self.reference_source,
                  "cache_dir": self.cache_dir, "use_cache": self.use_cache, "eval_timeout": self.eval_timeout,
                  "max_parallel": self.max_parallel, "executor": self.executor,
                  "catalogue": getattr(self.catalogue, "source", None), "quant": self.quant, "moe": self.moe,
                  "reference_protocol": self.reference_protocol, "localize": self.localize})
        return d


def check_model(model: str, what: str = "--model") -> str:
    p = Path(model).expanduser()
    if p.exists():
        if not p.is_dir():
            raise HarnessError(f"{what} {model!r} is a file; pass the model's checkpoint directory")
        from harness.backends.model_files import check_model_files

        check_model_files(p)  # a corrupt config.json or truncated weights: bad input now, not unresolved runs later
        return str(p)
    looks_like_hub_id = model.count("/") == 1 and not model.startswith((".", "/", "~"))
    if looks_like_hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(model, "config.json")
            if isinstance(hit, str):
                return model
        except Exception:  # noqa: BLE001 - no hub library or a broken cache: treat as missing
            pass
    raise HarnessError(f"{what} {model!r} does not exist (no such directory, and not a model id in the local "
                       "Hugging Face cache); pass a local checkpoint directory")


def resolve_inputs(args) -> BisectInputs:
    """Every input checked and resolved, in the order the errors are reported."""
    from harness.analysis.fake_quant import is_moe, quant_info
    from harness.config import resolve

    backend_ref, backend, cand = check_backends(args)
    check_flags(args)
    model = check_model(args.model)
    unquantized = check_model(args.unquantized_model, "--unquantized-model") if args.unquantized_model else None
    cfg = load_config(args, cand, backend)
    ablation, strategy = choose_strategy(args)
    dataset = check_dataset(args)
    quant = quant_info(model, resolve(cfg.catalogue, cfg.user))
    ref_score, ref_source, sigma, ref_alpha = reference_score(args, model, quant)
    popts = prompt_options(args, model)
    return BisectInputs(
        model=model, task=args.task, config_path=cfg.path, user_config=cfg.user, dataset=dataset,
        samples=args.samples, seed=args.seed, backend_ref=backend_ref, backend=backend, strategy=strategy,
        out_root=check_out_dir(args.out) if not args.dry_run else Path(args.out), catalogue=cfg.catalogue,
        default_yaml=str(cfg.default_yaml), reference_score=ref_score, reference_source=ref_source,
        reference_sigma=sigma, reference_alpha=ref_alpha, cache_dir=args.cache_dir, use_cache=not args.no_cache,
        eval_timeout=args.eval_timeout, max_parallel=args.max_parallel, quiet=args.quiet, dry_run=args.dry_run,
        ablation=ablation, unquantized_model=unquantized, plugins=cfg.plugins, plugin_transforms=cfg.plugin_transforms,
        aa_repeats=aa_repeats(args.aa_repeats, backend_ref), alpha=args.alpha, min_effect=args.min_effect, executor=args.executor,
        prompt_options=popts, quant=quant, moe=is_moe(model), config_notes=cfg.notes,
        reference_protocol=getattr(args, "reference_protocol", None) or "auto",
        localize=not getattr(args, "no_localize", False))


def aa_repeats(requested: int | None, backend_ref: str) -> int:
    """--aa-repeats as given; by default one A/A repeat when the reference backend is not
    deterministic (its own run-to-run noise must be measured, not assumed zero), else none."""
    from harness.backends import capabilities

    if requested is not None:
        return requested
    return 0 if capabilities(backend_ref).deterministic else 1


def check_backends(args):
    """(reference name, candidate name, candidate backend); the candidate must take an AD config."""
    from harness.backends import default_backends, get_backend

    ref_default, cand_default = default_backends()
    backend_ref = args.backend_ref or ref_default
    backend = args.backend or cand_default
    get_backend(backend_ref)  # unknown name -> one_of error
    cand = get_backend(backend)
    if not getattr(cand, "takes_ad_config", False):
        raise HarnessError(f"--backend {backend!r} does not take an AD config, so there are no knobs to bisect; pass "
                           "--backend ad-emulator or trtllm-ad")
    return backend_ref, backend, cand


def check_flags(args) -> None:
    """The numeric and choice flags, each against its range."""
    if args.executor not in EXECUTORS:
        raise HarnessError(f"unknown executor {args.executor!r}; valid: {', '.join(EXECUTORS)}. Pass --executor local.")
    if args.samples is not None and args.samples <= 0:
        raise HarnessError(f"--samples must be a positive integer, got {args.samples}; pass --samples 100")
    from harness.tasks.base import check_seed

    check_seed(args.seed)
    if not 0 < args.alpha < 1:
        raise HarnessError(f"--alpha must be between 0 and 1, got {args.alpha}; pass e.g. --alpha 0.05")
    if args.min_effect < 0:
        raise HarnessError(f"--min-effect must be >= 0 accuracy points, got {args.min_effect}")
    if args.aa_repeats is not None and args.aa_repeats < 0:
        raise HarnessError(f"--aa-repeats must be >= 0, got {args.aa_repeats}")
    if args.max_parallel != "auto" and args.max_parallel < 1:
        raise HarnessError(f"--max-parallel must be >= 1 or auto, got {args.max_parallel}")
    if args.eval_timeout is not None and args.eval_timeout <= 0:
        raise HarnessError(f"--timeout must be > 0 seconds, got {args.eval_timeout}; pass e.g. --timeout 1800")
    from harness.bisect.protocol import PROTOCOLS

    if (getattr(args, "reference_protocol", None) or "auto") not in PROTOCOLS:
        raise one_of("--reference-protocol", args.reference_protocol, list(PROTOCOLS),
                     "Pass --reference-protocol auto.")


@dataclass
class LoadedConfig:
    default_yaml: str  # the AD default.yaml in force
    path: str | None  # --config
    user: dict  # its content: an overlay on default_yaml
    plugins: list[str]
    catalogue: object  # the knobs of default_yaml plus the plugins' transforms
    plugin_transforms: list[str]  # transforms the plugins add
    notes: list[str] = field(default_factory=list)  # what the backend's check_config reported


def load_config(args, cand, backend: str) -> LoadedConfig:
    """The default.yaml in force (--default-yaml or the backend's), the user's config and the knob
    catalogue, with every transform the config names checked against it."""
    from harness.config import Catalogue, load_yaml
    from harness.config.ops import validate_transform_names

    default_yaml = args.default_yaml
    if default_yaml:
        if not Path(default_yaml).is_file():
            raise HarnessError(f"--default-yaml {default_yaml!r} does not exist; pass the path of "
                               "tensorrt_llm/_torch/auto_deploy/config/default.yaml")
        cand.use_default_yaml(default_yaml)  # every worker uses it too (environment)
    else:
        default_yaml = cand.default_yaml()
        if not default_yaml:
            raise HarnessError(f"backend {backend!r} has no default.yaml in force; pass --default-yaml PATH")
    user = load_yaml(args.config, "config") if args.config else {}
    ws = user.get("world_size", 1)
    if isinstance(ws, bool) or not isinstance(ws, int) or ws < 1:  # every backend: the plan ladders over it
        raise HarnessError(f"world_size in {args.config} must be a positive integer, got {ws!r}; set world_size: "
                           "1, 2, 4, ...")
    check_transforms_shape(user, args.config)
    plugins = [str(Path(p).expanduser().resolve()) if Path(p).expanduser().exists() else p for p in (args.plugin or [])]
    catalogue = cand.catalogue(str(default_yaml), user, plugins)
    validate_transform_names(user, catalogue)
    notes = cand.check_config(user, str(default_yaml))  # unknown top-level keys, backends: one error line
    base_names = set(Catalogue.from_yaml(default_yaml).names())
    extra = [n for n in catalogue.names() if n not in base_names]
    return LoadedConfig(default_yaml, args.config, user, plugins, catalogue, extra, list(notes))


def check_transforms_shape(user: dict, path) -> None:
    """``transforms`` is a mapping {name: {stage, enabled, ...}} with string names (AD's config layout,
    tensorrt_llm/_torch/auto_deploy/config/default.yaml); else one HarnessError line naming the file."""
    transforms = user.get("transforms") or {}
    if not isinstance(transforms, dict):
        raise HarnessError(f"'transforms' in {path} must be a mapping {{name: {{enabled: ...}}}}, got "
                           f"{type(transforms).__name__}; fix the config's transforms section")
    for name, conf in transforms.items():
        if not isinstance(name, str):
            raise HarnessError(f"transform name {name!r} in {path} must be a string; fix the config's transforms")
        if conf is not None and not isinstance(conf, dict):
            raise HarnessError(f"transforms.{name} in {path} must be a mapping (e.g. {{enabled: false}}), got "
                               f"{conf!r}; fix the config")


def choose_strategy(args):
    """(ablation plan or None, search strategy): --strategy, else the plan's, else adaptive."""
    from harness.bisect.ablation import load_ablation

    ablation = load_ablation(args.ablation) if args.ablation else None
    strategy = args.strategy or (ablation.strategy if ablation and ablation.strategy else "adaptive")
    if strategy not in ("adaptive", "linear"):
        raise HarnessError(f"unknown strategy {strategy!r}; valid: adaptive, linear. Pass --strategy adaptive.")
    return ablation, strategy


def check_dataset(args) -> str:
    """The task's data set directory: --dataset, else the task's default."""
    from harness.paths import default_dataset
    from harness.tasks import TASKS

    if args.task not in TASKS:
        raise one_of("task", args.task, list(TASKS), "Pass --task with one of these.")
    dataset = args.dataset or default_dataset(args.task)
    if dataset is None:
        raise HarnessError(f"no data set for task {args.task!r}: set $LLM_MODELS_ROOT or pass --dataset DIR")
    if not Path(dataset).exists():
        raise HarnessError(f"--dataset {dataset!r} does not exist; pass the data set directory")
    return dataset


def reference_score(args, model: str, quant: dict):
    """(expected reference score, its source, its sigma, its alpha) for Phase 0: --reference-score, else
    the model's entry in --references (looked up by path, then by directory name; the entry's own
    sigma and alpha override the task's, as accuracy_core.py does), else none."""
    if args.reference_score is not None:
        return args.reference_score, "--reference-score", 50.0, 0.05
    if not args.references:
        return None, None, 50.0, 0.05
    from harness.comparison.references import find_reference

    spec = {"quant_algo": quant.get("algo"), "kv_cache_quant_algo": quant.get("kv_cache_algo")}
    last = None
    for name in (model, Path(model).name):
        try:
            ref = find_reference(args.references, name, args.task, spec)
            return ref.accuracy, f"{ref.source} [{name}]", ref.sigma, ref.alpha
        except HarnessError as exc:
            last = exc
    raise last


def prompt_options(args, model: str) -> dict:
    """The prompt options that differ from the defaults (they go into every cache key)."""
    from harness.tasks.base import PromptOptions

    popts = PromptOptions.from_args(args, tokenizer=model).to_dict()
    defaults = PromptOptions().to_dict()
    popts_d = {k: v for k, v in popts.items() if v != defaults.get(k)}  # only what differs (cache key)
    if not popts_d.get("apply_chat_template"):
        popts_d.pop("tokenizer", None)
    return popts_d
