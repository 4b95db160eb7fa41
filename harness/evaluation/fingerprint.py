"""A cheap fingerprint of a model's files, for the evaluation cache key.

Every regular file under the model directory counts (weights, config.json, tokenizer files,
generation_config.json: all can change outputs), hidden files and directories excepted. Per file:
relative path, size, and sha256 of the whole file when it is under 64 MB; for larger files sha256
of the first and last MB plus the modification time (a change in the middle of a multi-GB shard
is caught by mtime; hashing it fully would cost seconds per evaluation). A model that is not a
local path (a Hub id) is fingerprinted by its name only.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

FULL_HASH_LIMIT = 64 * 1024 * 1024
EDGE = 1024 * 1024

_memo: dict[tuple, str] = {}
_memo_lock = threading.Lock()


def file_digest(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size < FULL_HASH_LIMIT:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        else:
            h.update(f.read(EDGE))
            f.seek(size - EDGE)
            h.update(f.read(EDGE))
    return h.hexdigest()[:32]


def file_entry(path: Path, rel: str) -> dict:
    st = path.stat()
    memo_key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    with _memo_lock:
        digest = _memo.get(memo_key)
    if digest is None:
        digest = file_digest(path, st.st_size)
        with _memo_lock:
            _memo[memo_key] = digest
    entry = {"file": rel, "size": st.st_size, "sha256": digest}
    if st.st_size >= FULL_HASH_LIMIT:
        entry["partial"] = True
        entry["mtime_ns"] = st.st_mtime_ns
    return entry


def model_files(root: Path) -> list[tuple[Path, str]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            if p.is_file():
                out.append((p, p.relative_to(root).as_posix()))
    return out


def fingerprint(model: str) -> dict:
    """{"path": absolute path or hub id, "files": [...]} — stable while the files are unchanged."""
    p = Path(model).expanduser()
    if p.is_file():
        return {"path": str(p.resolve()), "files": [file_entry(p.resolve(), p.name)]}
    if p.is_dir():
        root = p.resolve()
        return {"path": str(root), "files": [file_entry(f, rel) for f, rel in model_files(root)]}
    return {"path": model, "files": None, "local": False}
