"""``ad-emulator`` backend: load a Llama on CPU, run the configured AD-style pipeline, generate.

``open(model_dir, config, context)``: ``config`` is a user overlay on
``configs/emulator/default.yaml`` (or an already resolved config -- resolving is idempotent);
``context["plugins"]`` adds plugin files (``--plugin``). Bad configs raise ``HarnessError`` before
anything is loaded; a transform that fails while applying raises ``TransformError`` (the
evaluation becomes ``unresolved``). Generation is ``harness.backends.hf.generate.generate`` on the
transformed model, exactly as the ``hf`` backend generates.
"""
from __future__ import annotations

from pathlib import Path

from harness.backends.base import Backend, Completion, Engine, SamplingSpec
from harness.backends.hf.backend import TORCH_STACK
from harness.errors import HarnessError
from harness.paths import EMULATOR_DEFAULT_YAML

EMULATOR_VERSION = "2"  # 2: cross-engine noise (engine_noise, noise.py)


class EmulatorEngine(Engine):
    def __init__(self, model_path, model, tokenizer, plan, records, load_s):
        self.model_path = model_path
        self.model = model
        self.tokenizer = tokenizer
        self.plan = plan
        self.records = records
        self.load_s = load_s

    def generate(self, prompts: list[str], sampling: SamplingSpec) -> list[Completion]:
        from harness.backends.hf.generate import generate

        return generate(self.model, self.tokenizer, prompts, sampling, device="cpu")

    def info(self) -> dict:
        import torch
        import transformers

        return {
            "backend": "ad-emulator",
            "emulator_version": EMULATOR_VERSION,
            "model": str(Path(self.model_path).resolve()),
            "device": "cpu",
            "dtype": "float32",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "threads": torch.get_num_threads(),
            "default_yaml": str(EMULATOR_DEFAULT_YAML),
            "compile_backend": self.plan.compile_backend,
            "world_size": self.plan.world_size,
            "attn_backend": self.plan.attn_backend,
            "engine_noise": {**self.plan.engine_noise.to_dict(), "kernel_signature": self.plan.kernel_signature},
            "plugins": sorted(set(self.plan.plugins.sources.values())),
            "transforms": self.records,
            "settings": {"compile_backend": self.plan.compile_backend, "world_size": self.plan.world_size,
                         "attn_backend": self.plan.attn_backend},
            # the options each transform ran with (harness/backends/accounting.py compares them with the config)
            "transform_configs": {n: dict(c) for n, c in (self.plan.resolved.get("transforms") or {}).items()
                                  if isinstance(c, dict)},
            "pipeline_s": round(sum(r.get("time_s", 0.0) for r in self.records), 4),
            "load_s": round(self.load_s, 4),
        }

    def close(self) -> None:
        self.model = None
        self.tokenizer = None


def build_context(plan, model, tokenizer, model_dir) -> dict:
    """What every transform (and plugin) receives as ``context``."""
    from harness.backends.emulator.quant import read_quant_config

    return {
        "world_size": plan.world_size,
        "compile_backend": plan.compile_backend,
        "attn_backend": plan.attn_backend,
        "config": model.config,
        "model_dir": str(model_dir),
        "quant_config": read_quant_config(model_dir),
        "resolved_config": plan.resolved,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def load_transformed(model_dir: str, config: dict | None, plugins=()):
    """(model, tokenizer, plan, records): the emulated, transformed model (also used by tests)."""
    import time

    from harness.backends.emulator.modules import decoder_layers, emulate
    from harness.backends.emulator.noise_hooks import install_engine_noise
    from harness.backends.emulator.pipeline import build_plan, run_plan
    from harness.backends.hf.backend import check_model_dir, load_model_and_tokenizer

    plan = build_plan(config or {}, plugins)
    path = check_model_dir(model_dir)
    t0 = time.perf_counter()
    model, tok, _ = load_model_and_tokenizer(str(path), device="cpu")
    try:
        emulate(model)
    except TypeError as exc:
        raise HarnessError(f"model {str(model_dir)!r} is not a Llama-family checkpoint ({exc}); the ad-emulator "
                           f"backend runs LlamaForCausalLM models. Use --backend hf for other architectures.") from None
    records = run_plan(plan, model, build_context(plan, model, tok, path))
    install_engine_noise(model, decoder_layers(model), plan.engine_noise, plan.kernel_signature)
    return model, tok, plan, records, time.perf_counter() - t0


class EmulatorBackend(Backend):
    name = "ad-emulator"
    takes_ad_config = True
    takes_world_size = True
    takes_plugins = True
    needs_local_model = True
    uses_gpu = False  # a CPU stand-in: it never takes a GPU
    cpu_threads = 1  # torch.set_num_threads($HARNESS_TORCH_THREADS or 1) (harness/backends/hf/backend.py)
    preload_modules = TORCH_STACK + ("harness.backends.hf.backend", "harness.backends.hf.generate",
                                     "harness.backends.emulator.backend")
    supports_activation_capture = True

    @classmethod
    def warm(cls, model: str) -> None:
        from harness.backends.hf.backend import keep_loaded  # the emulator transforms the hf model in place

        keep_loaded(model)

    def catalogue(self, default_yaml: str, user: dict, plugins: list[str]):
        from harness.backends.emulator.pipeline import build_catalogue

        catalogue, _ = build_catalogue(user, plugins, default_yaml)
        return catalogue

    def default_yaml(self) -> str | None:
        return str(EMULATOR_DEFAULT_YAML)

    def check_config(self, config: dict, default_yaml: str | None = None) -> list[str]:
        """The values of the config (faults, enabled, world_size, ...), as ``build_plan`` will check them in the
        worker: a bad one fails --dry-run and diagnose up front (harness/backends/emulator/pipeline.py)."""
        from harness.backends.emulator.pipeline import check_config

        check_config(config, default_yaml or EMULATOR_DEFAULT_YAML)
        return []

    def core_alternatives(self, resolved: dict) -> list[dict]:
        """One attention backend per kernel the current one does not use (harness/backends/emulator/attention.py),
        then one compiled backend: the emulator's compiled backends share one lowering
        (harness/backends/emulator/compile.py), so torch-cudagraph stands for all of them without a CPU
        torch.compile. The emulator has no KV-cache dtype."""
        from harness.backends.emulator.attention import KERNELS
        from harness.backends.emulator.compile import COMPILE_BACKENDS

        ab = str(resolved.get("attn_backend") or "trtllm")
        kernels = {KERNELS.get(ab)}
        rungs = []
        for name in ("flashinfer", "trtllm", "torch", "triton_paged"):
            if KERNELS[name] not in kernels:
                kernels.add(KERNELS[name])
                rungs.append({"axis": "attn_backend", "from": ab, "value": name, "config": {"attn_backend": name}})
        cb = str(resolved.get("compile_backend") or "torch-simple")
        if cb == "torch-simple" and "torch-cudagraph" in COMPILE_BACKENDS:
            rungs.append({"axis": "compile_backend", "from": cb, "value": "torch-cudagraph",
                          "config": {"compile_backend": "torch-cudagraph"}})
        return rungs

    def version_key(self) -> dict:
        """+ the emulator's version and the noise profile: code, not config, yet they change outputs."""
        from harness.backends.emulator.noise import profile

        return {**super().version_key(), "ad-emulator": EMULATOR_VERSION, "engine_noise_profile": profile()}

    def activations(self, model: str, config: dict, context: dict | None = None):
        """The transformed model with its noise hooks, eager (harness/backends/emulator/activations.py)."""
        from harness.backends.emulator.activations import EmulatorActivations

        mdl, tok, _, _, _ = load_transformed(model, config, list((context or {}).get("plugins") or []))
        return EmulatorActivations(mdl, tok)

    def open(self, model: str, config: dict, context: dict | None = None) -> Engine:
        plugins = list((context or {}).get("plugins") or [])
        mdl, tok, plan, records, load_s = load_transformed(model, config, plugins)
        return EmulatorEngine(model, mdl, tok, plan, records, load_s)
