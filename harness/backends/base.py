"""Backend contract: open(model, config) -> Engine; Engine.generate(prompts, sampling) -> [Completion]."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class SamplingSpec:
    """Greedy decoding, the same on every backend (see trtllm-autodeploy.md §1.1, §4)."""

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
    name: str = ""
    # True when the backend reads an AD-style YAML config (transforms, compile_backend, ...)
    takes_ad_config: bool = False

    def open(self, model: str, config: dict, context: dict | None = None) -> Engine:
        raise NotImplementedError

    def default_yaml(self) -> str | None:
        """Path of the pipeline default.yaml in force (the knob catalogue), or None."""
        return None

    def version_key(self) -> dict:
        """Engine versions that can change outputs; part of the evaluation cache key.

        Must be cheap and must not import the engine (read package metadata). Default: torch
        and transformers versions. TensorRT-LLM backends add tensorrt_llm's version.
        """
        from importlib import metadata

        out = {}
        for dist in ("torch", "transformers"):
            try:
                out[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                out[dist] = None
        return out
