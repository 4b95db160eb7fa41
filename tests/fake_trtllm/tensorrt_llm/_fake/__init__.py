"""Fake-only machinery (numerics, faults). Not part of the real package's API."""
import json
import os
from pathlib import Path

FAULT_FILE = Path(__file__).resolve().parent / "fault.json"
FAULT_ENV = "FAKE_TRTLLM_FAULT"


def fault_spec():
    """The planted fault: {"transform": name, "kind": "skip_layer" (default) | "noise" | "zero_last_mlp" | "attn_scale", ...} or None.

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
