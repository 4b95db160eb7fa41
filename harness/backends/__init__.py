"""Backend registry by name, imported lazily so `import harness` never pulls torch or tensorrt_llm."""
from __future__ import annotations

import importlib
import importlib.util

from harness.errors import one_of

BACKENDS = {
    "hf": "harness.backends.hf:HFBackend",
    "ad-emulator": "harness.backends.emulator.backend:EmulatorBackend",
    "trtllm-ad": "harness.backends.trtllm_ad:AutoDeployBackend",
    "trtllm-pt": "harness.backends.trtllm_pt:PyTorchBackend",
}


def get_backend(name: str):
    if name not in BACKENDS:
        raise one_of("backend", name, list(BACKENDS), "Pass --backend with one of these.")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def trtllm_available() -> bool:
    """True when tensorrt_llm is importable (checked without importing it)."""
    return importlib.util.find_spec("tensorrt_llm") is not None


def default_backends() -> tuple[str, str]:
    """(reference, candidate): trtllm-pt vs trtllm-ad on an engine machine, else hf vs ad-emulator."""
    return ("trtllm-pt", "trtllm-ad") if trtllm_available() else ("hf", "ad-emulator")
