"""JSON in and out: the canonical form that cache keys and config hashes are computed on, short
content hashes, and atomic writes (a reader sees the old file or the whole new one; a failed write
leaves no temp file behind and is one HarnessError naming the file and the cause, a full disk
included)."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import threading
from pathlib import Path

from harness.errors import HarnessError


def sha(text: str | bytes, n: int = 16) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()[:n]


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def write_error(path: str | Path, exc: OSError, fix: str = "pass --out with another directory") -> HarnessError:
    """One line for a failed write: the file, the cause (a full disk says so) and the fix."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return HarnessError(f"cannot write {path}: the disk is full ({exc.strerror}); free space there or {fix}")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return HarnessError(f"cannot write {path}: not writable ({exc.strerror}); {fix}")
    return HarnessError(f"cannot write {path}: {exc.strerror or exc}; {fix}")


@contextlib.contextmanager
def atomic_write(path: str | Path, fix: str = "pass --out with another directory"):
    """A text file that replaces ``path`` only when the block completes (temp file, fsync, rename). On any
    failure the temp file is removed; an OSError (a full disk, a read-only directory) becomes a
    HarnessError naming ``path`` and ``fix``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise write_error(path, exc, fix) from None
        raise


def write_text_atomic(path: str | Path, text: str, fix: str = "pass --out with another directory") -> None:
    with atomic_write(path, fix) as f:
        f.write(text)


def write_json_atomic(path: str | Path, obj) -> None:
    """Write JSON so a reader sees the old file, or the whole new one, never a partial one."""
    with atomic_write(path) as f:
        json.dump(obj, f, default=str)
