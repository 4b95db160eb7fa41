"""Fake-only machinery (numerics, faults). Not part of the real package's API."""
import json
import os
from pathlib import Path

FAULT_FILE = Path(__file__).resolve().parent / "fault.json"
FAULT_ENV = "FAKE_TRTLLM_FAULT"
LOG_FORMAT_FILE = Path(__file__).resolve().parent / "log_format"
LOG_FORMAT_ENV = "FAKE_TRTLLM_LOG_FORMAT"


def log_format():
    """How the fake AD logs each transform: "summary" (default, newest AD) or "legacy" (older AD).

    $FAKE_TRTLLM_LOG_FORMAT wins over tensorrt_llm/_fake/log_format (written by tests/trtllm_fake.py)."""
    fmt = os.environ.get(LOG_FORMAT_ENV)
    if not fmt and LOG_FORMAT_FILE.is_file():
        fmt = LOG_FORMAT_FILE.read_text(encoding="utf-8").strip()
    fmt = fmt or "summary"
    if fmt not in ("summary", "legacy"):
        raise ValueError(f"fake log format {fmt!r}: use summary or legacy")
    return fmt


def fault_spec():
    """The planted fault or None: {"transform": name, "kind": "skip_layer" (default) | "noise" | "zero_last_mlp" |
    "attn_scale" | "raise", ...}; or {"attn_backend": B, "kind": ...}: the fault sits in attention backend B's kernel.

    $FAKE_TRTLLM_FAULT (a transform name or a JSON object) wins over tensorrt_llm/_fake/fault.json.
    """
    raw = os.environ.get(FAULT_ENV)
    if raw is None and FAULT_FILE.is_file():
        raw = FAULT_FILE.read_text(encoding="utf-8")
    if not raw or not raw.strip():
        return None
    raw = raw.strip()
    if raw.startswith("{"):
        spec = json.loads(raw)
    else:
        spec = {"transform": raw}
    spec.setdefault("kind", "skip_layer")
    return spec
