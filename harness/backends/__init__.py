"""Backend registry by name, imported lazily so `import harness` never pulls torch or tensorrt_llm."""
from __future__ import annotations

import importlib
import importlib.util

from harness.backends.base import Backend
from harness.errors import one_of

BACKENDS = {
    "hf": "harness.backends.hf.backend:HFBackend",
    "ad-emulator": "harness.backends.emulator.backend:EmulatorBackend",
    "trtllm-ad": "harness.backends.trtllm.ad:AutoDeployBackend",
    "trtllm-pt": "harness.backends.trtllm.pt:PyTorchBackend",
}


def get_backend(name: str):
    if name not in BACKENDS:
        raise one_of("backend", name, list(BACKENDS), "Pass --backend with one of these.")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def capabilities(name: str) -> type[Backend]:
    """The Backend class registered as ``name``, for its capability attributes, without
    instantiating it. The base ``Backend`` (no capabilities) when the name is not registered in
    this process, its module does not import (e.g. a backend only a worker registers), or the
    class does not derive from ``Backend``."""
    target = BACKENDS.get(name)
    if target is None:
        return Backend
    module, cls = target.split(":")
    try:
        found = getattr(importlib.import_module(module), cls)
    except Exception:  # noqa: BLE001 - capabilities are a hint; the worker reports the real error
        return Backend
    return found if isinstance(found, type) and issubclass(found, Backend) else Backend


def trtllm_available() -> bool:
    """True when tensorrt_llm is importable (checked without importing it)."""
    return importlib.util.find_spec("tensorrt_llm") is not None


def default_backends() -> tuple[str, str]:
    """(reference, candidate): trtllm-pt vs trtllm-ad on an engine machine, else hf vs ad-emulator."""
    return ("trtllm-pt", "trtllm-ad") if trtllm_available() else ("hf", "ad-emulator")
