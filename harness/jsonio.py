"""JSON in and out: the canonical form that cache keys and config hashes are computed on, short
content hashes, and atomic writes (a reader sees the old file or the whole new one)."""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path


def sha(text: str | bytes, n: int = 16) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()[:n]


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def write_json_atomic(path: str | Path, obj) -> None:
    """Write JSON so a reader sees the old file, or the whole new one, never a partial one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
