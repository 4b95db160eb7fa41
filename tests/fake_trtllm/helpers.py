"""Test helpers: put a materialized fake tensorrt_llm first on sys.path for one test, then remove it."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from make_fake import make_fake  # noqa: E402


def purge_tensorrt_llm() -> None:
    for name in [m for m in sys.modules if m == "tensorrt_llm" or m.startswith("tensorrt_llm.")]:
        del sys.modules[name]
    importlib.invalidate_caches()


def use_fake(monkeypatch, tmp_path, era: str = "merged", fault=None) -> Path:
    """Materialize the fake (era, fault), prepend it to sys.path and $PYTHONPATH; undone at teardown."""
    site = make_fake(tmp_path / f"fake_{era}", era=era, fault=fault)
    purge_tensorrt_llm()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    monkeypatch.delenv("FAKE_TRTLLM_FAULT", raising=False)
    monkeypatch.delenv("HARNESS_AD_DEFAULT_YAML", raising=False)
    return site


def fake_logger_handlers_reset() -> None:
    """The fake loggers are singletons bound to the sys.stdout of their first import."""
    import logging

    for name in ("TRT-LLM", "TRT-LLM AUTO-DEPLOY"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
