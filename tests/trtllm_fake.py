"""The fake tensorrt_llm for tests: materialize it (API era, planted fault, log format) and put it on sys.path.

    site = make_fake(tmp_path, era="merged", fault={"transform": "fuse_rmsnorm"})
    site = make_fake(tmp_path, fault={"attn_backend": "trtllm", "kind": "attn_scale", "scale": 0.0})
    # put ``site`` first on sys.path / PYTHONPATH; ``import tensorrt_llm`` then loads the fake.

The package tree lives in tests/fake_trtllm/ (never put that directory itself on sys.path: only a
materialized copy, so no other test ever sees a tensorrt_llm).

Eras (NVIDIA/TensorRT-LLM history: tensorrt_llm/_torch/auto_deploy/llm_args.py@3e906a0e, AutoDeployConfig
era, vs @01e5db06, merged era; tensorrt_llm/version.py is 1.0.0rc4 @000a01de, 1.2.0rc2 @b35ac1b6):
* ``merged`` (the tree under tests/fake_trtllm/tensorrt_llm, version 1.2.0rc2): LlmArgs extends
  TorchLlmArgs; kv_cache_config.free_gpu_memory_fraction, cuda_graph_config.batch_sizes,
  compile default torch-cudagraph, attention backends incl. trtllm / triton_paged.
* ``autodeploy_config`` (overlay in eras/autodeploy_config, version 1.0.0rc4): AutoDeployConfig
  shortcuts free_mem_ratio / cuda_graph_batch_sizes, compile default torch-compile, attention
  backends flashinfer / triton / torch, no cuda_graph_config.

Log formats (how the fake AD logs each transform; tensorrt_llm/_torch/auto_deploy/transform/interface.py):
"summary" (``[SUMMARY] matches=N | time: ...``, the newest stored version) is the default of the merged era,
"legacy" (``enabled=True, num_matches=N, ...`` + ``elapsed time``, @c57d2c55) the default of the older era;
``log_format=`` picks either for any era.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "fake_trtllm"
BASE = HERE / "tensorrt_llm"
ERAS = {"merged": None, "autodeploy_config": HERE / "eras" / "autodeploy_config" / "tensorrt_llm"}
ERA_LOG_FORMAT = {"merged": "summary", "autodeploy_config": "legacy"}


def make_fake(dest: str | Path, era: str = "merged", fault: dict | str | None = None,
              log_format: str | None = None) -> Path:
    """Copy the fake package to ``dest``/site/tensorrt_llm; returns ``dest``/site (the sys.path entry)."""
    if era not in ERAS:
        raise ValueError(f"unknown fake era {era!r}; valid: {', '.join(ERAS)}")
    site = Path(dest) / "site"
    pkg = site / "tensorrt_llm"
    if pkg.exists():
        shutil.rmtree(pkg)
    shutil.copytree(BASE, pkg, ignore=shutil.ignore_patterns("__pycache__", "fault.json", "log_format"))
    overlay = ERAS[era]
    if overlay is not None:
        for f in overlay.rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts:
                target = pkg / f.relative_to(overlay)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)
    if fault:
        spec = {"transform": fault} if isinstance(fault, str) else dict(fault)
        (pkg / "_fake" / "fault.json").write_text(json.dumps(spec), encoding="utf-8")
    (pkg / "_fake" / "log_format").write_text(log_format or ERA_LOG_FORMAT[era], encoding="utf-8")
    return site


def purge_tensorrt_llm() -> None:
    for name in [m for m in sys.modules if m == "tensorrt_llm" or m.startswith("tensorrt_llm.")]:
        del sys.modules[name]
    importlib.invalidate_caches()


def use_fake(monkeypatch, tmp_path, era: str = "merged", fault=None, log_format: str | None = None) -> Path:
    """Materialize the fake (era, fault, log format), prepend it to sys.path and $PYTHONPATH; undone at teardown."""
    site = make_fake(tmp_path / f"fake_{era}", era=era, fault=fault, log_format=log_format)
    purge_tensorrt_llm()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    # The AD backend sets these in its own process (a worker's, normally; here the test's). setenv
    # first so that monkeypatch restores their absence at teardown (delenv of an absent name records
    # nothing, and the value leaked into later tests).
    for name in ("FAKE_TRTLLM_FAULT", "FAKE_TRTLLM_LOG_FORMAT", "HARNESS_AD_DEFAULT_YAML", "AD_DUMP_GRAPHS_DIR"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return site


def fake_logger_handlers_reset() -> None:
    """The fake loggers are singletons bound to the sys.stdout of their first import."""
    import logging

    for name in ("TRT-LLM", "TRT-LLM AUTO-DEPLOY"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
