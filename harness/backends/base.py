"""Backend contract: open(model, config) -> Engine; Engine.generate(prompts, sampling) -> [Completion]."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class SamplingSpec:
    """Greedy decoding, the same on every backend: every sampling knob left None, as TensorRT-LLM's
    SamplingParams reads greedy (tensorrt_llm/sampling_params.py), and one SamplingParams for PT and AD
    so only the backend differs (harness/backends/trtllm/common.py follows the accuracy tests)."""

    max_tokens: int = 2
    stop: list[str] | None = None
    truncate_prompt_tokens: int | None = 4094
    ignore_eos: bool = True  # AD tests' end_id=-1, pad_id=-1: exactly max_tokens tokens
    top_logprobs: int = 10  # top-k log-probabilities recorded at each generated position
    answer_continuations: list[str] | None = None  # log-probs of these at the first position
    batch_size: int = 32  # CPU backends only; TensorRT-LLM submits all prompts at once

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    finish_reason: str  # "length" | "stop" | "eos"
    prompt_token_ids: list[int] | None = None  # after truncation, as the engine saw them
    # per generated position: {token_text: logprob} for the top-k tokens (None if not available)
    top_logprobs: list[dict[str, float]] | None = None
    # logprob of each answer continuation (e.g. {" A": -0.1, ...}) at the first generated position
    answer_logprobs: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Engine:
    """A loaded model. Use as a context manager; close() frees it."""

    def generate(self, prompts: list[str], sampling: SamplingSpec) -> list[Completion]:
        raise NotImplementedError

    def info(self) -> dict:
        """Versions, device, and which knobs actually took effect (for run.json / the report)."""
        return {}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class Backend:
    """A backend by name, with the capabilities the rest of the harness asks about (instead of
    comparing backend names). Importing a Backend class must stay cheap: no torch, no engine."""

    name: str = ""
    # reads an AD-style YAML config (transforms, compile_backend, ...): there are knobs to bisect
    takes_ad_config: bool = False
    # honours `world_size` in its config (a reference run at the candidate's world size)
    takes_world_size: bool = False
    # loads plugin transform files (--plugin / `plugins:`)
    takes_plugins: bool = False
    # the model must be a local checkpoint directory (checked before any work)
    needs_local_model: bool = False
    # the same prompts give bit-identical outputs on every run (False: bisect measures the reference's
    # run-to-run noise with an A/A repeat by default, --aa-repeats)
    deterministic: bool = True
    # may run in a child forked from the fork server (False: MPI / CUDA state must not be forked)
    fork_safe: bool = True
    # modules a fork-server worker imports once, before forking (harness/execution/forkserver.py)
    preload_modules: tuple[str, ...] = ()
    # environment variable through which workers and repro scripts see --default-yaml (or None)
    default_yaml_env: str | None = None
    # runs the model's own modules in this Python process: activations can be captured at module
    # boundaries and a module replayed on other inputs (``activations``, harness/backends/activations.py)
    supports_activation_capture: bool = False
    # takes a GPU when the machine has one (False: runs on CPU whatever is visible); the executor
    # gives each evaluation its own devices (harness/execution/slots.py)
    uses_gpu: bool = True
    # torch intra-op threads one evaluation uses on CPU (None: the worker's whole thread budget)
    cpu_threads: int | None = None

    @classmethod
    def gpus_required(cls, config: dict | None) -> int:
        """GPUs one evaluation of ``config`` cannot run without (0: it runs on CPU too). A Slurm job
        asks for at least this many."""
        return 0

    @classmethod
    def warm(cls, model: str) -> None:
        """Load what every evaluation of ``model`` shares, in the fork server before it forks (CPU only:
        no CUDA, no thread left running), so forked workers find it in memory. Default: nothing."""

    @classmethod
    def gpus_per_evaluation(cls, config: dict | None) -> int:
        """GPUs one evaluation of ``config`` occupies on a machine that has GPUs."""
        return max(1, cls.gpus_required(config)) if cls.uses_gpu else 0

    def open(self, model: str, config: dict, context: dict | None = None) -> Engine:
        raise NotImplementedError

    def activations(self, model: str, config: dict, context: dict | None = None):
        """The model loaded as ``open`` loads it, wrapped for activation capture: an ``ActivationModel``
        (harness/backends/activations.py). Only backends with ``supports_activation_capture``."""
        from harness.errors import HarnessError

        raise HarnessError(f"backend {self.name!r} cannot capture activations at module boundaries (its model "
                           "does not run in this process); localize with a backend that runs in Python "
                           "(hf, ad-emulator), or use AD's graph dumps (--dump-graphs)")

    def default_yaml(self) -> str | None:
        """Path of the pipeline default.yaml in force (the knob catalogue), or None."""
        return None

    def use_default_yaml(self, path: str) -> None:
        """``--default-yaml PATH``: make PATH the default.yaml in force here and in every worker."""

    def catalogue(self, default_yaml: str, user: dict, plugins: list[str]):
        """The knob catalogue of ``default_yaml`` for this user config (plugin transforms added by
        backends that take plugins)."""
        from harness.config import Catalogue
        from harness.errors import HarnessError

        if plugins:
            raise HarnessError(f"--plugin is supported by backends that load plugin transforms (ad-emulator), not "
                               f"{self.name!r}; drop --plugin")
        return Catalogue.from_yaml(default_yaml)

    def check_config(self, config: dict, default_yaml: str | None = None) -> list[str]:
        """Check a config before anything runs (unknown keys raise ``HarnessError``); returns notes, e.g.
        what could not be checked. Default: nothing beyond the transform names bisect already checks."""
        return []

    def core_alternatives(self, resolved: dict) -> list[dict]:
        """Rungs of the core-path ladder for a resolved (minimal) config, in the order to try them:
        ``{"axis": "attn_backend" | "kv_cache_dtype" | "compile_backend", "from": current, "value": new,
        "config": overlay}`` -- alternatives this backend's installed version has. Default: none."""
        return []

    def version_key(self) -> dict:
        """Engine versions that can change outputs; part of the evaluation cache key.

        Must be cheap and must not import the engine (read package metadata). Default: torch
        and transformers versions. TensorRT-LLM backends add tensorrt_llm's version.
        """
        return package_versions("torch", "transformers")


def package_versions(*dists: str) -> dict:
    """{distribution: installed version or None}, read from package metadata (nothing imported)."""
    from importlib import metadata

    out = {}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out
