"""The evaluation store: one SQLite row per evaluation, keyed by everything that can change it.

``<cache_dir>/evals.sqlite`` (stdlib sqlite3, WAL journal). Each write is one transaction, so a
process killed at any moment (SIGKILL included) leaves either the whole row or none; a rerun
continues from the rows that exist. Several processes may share one cache (busy timeout).

Only ``ok`` results are served from the cache: an ``unresolved`` one (crash, hang, OOM) is stored
so ``cache ls`` and the report can show it, but ``get`` ignores it and the next attempt re-runs it
(the engine may have been fixed, or the failure was transient).

Claims: a process about to evaluate a key first claims it (``claim``: a row in ``claims`` naming
the host, pid and process start time, with an expiry), so two runs sharing a store compute each
evaluation once: the second waits for the first's result instead (``harness/execution/runner.py``).
A claim whose process is gone (same host) or whose expiry passed is taken over.

Failures: every SQLite error becomes one ``HarnessError`` naming the file, the cause and the fix
(a full disk says so; a corrupt file says how to start over). The file is checked at open
(``PRAGMA quick_check``), so a corrupt store stops a command before it evaluates anything.
``Store(..., recover=True)`` (``--no-cache``, ``cache rm --all``) moves a corrupt file aside to
``evals.sqlite.corrupt-<time>`` and starts a new store instead.
"""
from __future__ import annotations

import errno
import json
import math
import os
import socket
import sqlite3
import threading
import time
import uuid
import zlib
from contextlib import contextmanager
from pathlib import Path

from harness.errors import HarnessError
from harness.evaluation.spec import EvalResult

DB_NAME = "evals.sqlite"
SCHEMA_VERSION = 1  # PRAGMA user_version; bump with a migration when the table changes
COMPRESS_ABOVE = 2048  # bytes of records JSON

SCHEMA = """
CREATE TABLE IF NOT EXISTS evals (
    key      TEXT PRIMARY KEY,
    created  REAL NOT NULL,
    label    TEXT,
    backend  TEXT,
    task     TEXT,
    model    TEXT,
    n        INTEGER,
    score    REAL,
    status   TEXT NOT NULL,
    spec     TEXT NOT NULL,
    metrics  TEXT,
    info     TEXT,
    records  BLOB,
    codec    TEXT,
    error    TEXT,
    log_tail TEXT
);
CREATE INDEX IF NOT EXISTS evals_created ON evals(created);
CREATE TABLE IF NOT EXISTS claims (
    key      TEXT PRIMARY KEY,
    owner    TEXT NOT NULL,
    host     TEXT,
    pid      INTEGER,
    started  REAL,
    created  REAL NOT NULL,
    expires  REAL NOT NULL
);
"""


def _dumps(obj) -> str:
    # allow_nan: NaN/inf log-probabilities round-trip exactly (json.loads reads NaN/Infinity)
    return json.dumps(obj, sort_keys=True, default=str)


def encode_records(records: list[dict]) -> tuple[bytes, str]:
    raw = _dumps(records).encode("utf-8")
    if len(raw) > COMPRESS_ABOVE:
        return zlib.compress(raw, 6), "zlib+json"
    return raw, "json"


def decode_records(blob, codec: str | None) -> list[dict]:
    if blob is None:
        return []
    if isinstance(blob, str):
        blob = blob.encode("utf-8")
    if codec == "zlib+json":
        blob = zlib.decompress(blob)
    return json.loads(blob.decode("utf-8"))


BUSY_TIMEOUT_S = 60.0
CORRUPT_MARKERS = ("malformed", "not a database", "corrupt", "file is encrypted")
FULL_MARKERS = ("database or disk is full", "disk is full", "no space left")


class StoreError(HarnessError):
    """A store operation failed; ``kind``: full | corrupt | locked | readonly | other."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def error_kind(exc: BaseException) -> str:
    """What a sqlite3 (or OS) error means for the user: full | corrupt | locked | readonly | other."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")  # Python >= 3.11
    text = str(exc).lower()
    if getattr(exc, "errno", None) == errno.ENOSPC or name.startswith("SQLITE_FULL") or \
            any(m in text for m in FULL_MARKERS):
        return "full"
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or any(m in text for m in CORRUPT_MARKERS):
        return "corrupt"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return "locked"
    if name.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        return "readonly"
    return "other"


def store_error(exc: BaseException, path: Path, doing: str) -> StoreError:
    """One line naming the file, the cause and the fix."""
    kind = error_kind(exc)
    where = str(path.parent)
    exc = " ".join(str(exc).split())  # one line, whatever SQLite's message holds
    if kind == "full":
        msg = (f"cannot {doing}: the disk holding the cache database {path} is full ({exc}). Free space on that "
               f"disk or pass --cache-dir on another disk; the evaluations already stored are kept")
    elif kind == "corrupt":
        msg = (f"the cache database {path} is corrupt ({exc}). Move it aside and start a new one with "
               f"`python -m harness cache rm --all --cache-dir {where}` (--no-cache does the same), or pass "
               f"another --cache-dir")
    elif kind == "locked":
        msg = (f"the cache database {path} stayed locked by another process for {BUSY_TIMEOUT_S:g} s (trying to "
               f"{doing}); wait for the other run to finish or pass another --cache-dir")
    elif kind == "readonly":
        msg = f"the cache database {path} is read-only ({exc}); pass a writable --cache-dir"
    else:
        msg = (f"cannot {doing} in the cache database {path}: {exc}. Pass another --cache-dir, or move {path} "
               f"aside to start a new store")
    return StoreError(msg, kind)


def _process_start(pid: int) -> float | None:
    """Start time of a process (clock ticks since boot, Linux /proc), or None: tells a reused pid apart."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="utf-8", errors="replace") as f:
            return float(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int, started: float | None) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, ValueError):
        return True
    now_started = _process_start(pid)
    return started is None or now_started is None or now_started == started


class Store:
    def __init__(self, cache_dir: str | Path = ".harness", recover: bool = False):
        self.cache_dir = Path(cache_dir)
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HarnessError(f"cannot create cache dir {str(cache_dir)!r}: {exc.strerror}. "
                               "Pass a writable --cache-dir.") from None
        self.path = self.cache_dir / DB_NAME
        self.recover = recover
        self.moved_aside: Path | None = None  # where a corrupt file went (recover=True)
        self._lock = threading.Lock()
        self._host = socket.gethostname()
        self._owner = f"{self._host}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._conn = None
        try:
            self._conn = self._connect()
        except (sqlite3.Error, OSError) as exc:
            if not (recover and error_kind(exc) == "corrupt"):
                raise store_error(exc, self.path, "open the store") from None
            self._start_over()

    def _connect(self) -> sqlite3.Connection:
        """Open, check (quick_check: a corrupt page anywhere fails here, before any evaluation) and
        create the tables. Opening is serialized across processes by a lock file: two processes setting
        up a new store at once (journal_mode=WAL, the schema) can get SQLITE_BUSY at once, without
        SQLite's busy handler being called, so the second run failed as "locked" in about 1 of 15 tries."""
        import fcntl

        with open(f"{self.path}.open-lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            return self._connect_unlocked()

    def _connect_unlocked(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, check_same_thread=False,
                               isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)").fetchall()]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("database disk image is malformed: " + "; ".join(problems)[:200])
            conn.executescript(SCHEMA)
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _start_over(self) -> None:
        """recover=True: move the corrupt file (and its WAL) aside and open a new, empty store."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        dest = self.path.with_name(f"{DB_NAME}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            for suffix in ("", "-wal"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    os.replace(src, Path(f"{dest}{suffix}"))
            Path(f"{self.path}-shm").unlink(missing_ok=True)
            self._conn = self._connect()
        except (sqlite3.Error, OSError) as exc:
            raise store_error(exc, self.path, "start a new store") from None
        self.moved_aside = dest

    def close(self) -> None:
        with self._lock:
            if self._conn is None:
                return
            try:  # claims this process still holds (an interrupted evaluation): free them for others
                self._conn.execute("DELETE FROM claims WHERE owner = ?", (self._owner,))
            except sqlite3.Error:
                pass
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @contextmanager
    def _op(self, doing: str):
        """The connection, under the lock; a SQLite error becomes one StoreError (rolled back first)."""
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                try:
                    if self._conn is not None and self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                except sqlite3.Error:  # SQLite already rolled back (e.g. on a full disk)
                    pass
                raise store_error(exc, self.path, doing) from None

    # -- writes -----------------------------------------------------------------------------
    def put(self, key: str, spec: dict, result: EvalResult) -> None:
        """Insert or replace the row for ``key`` in one transaction (recover=True: a store found corrupt
        now is moved aside and the row goes into a new one)."""
        blob, codec = encode_records(result.records)
        score = (result.metrics or {}).get("score")
        if not isinstance(score, (int, float)) or (isinstance(score, float) and not math.isfinite(score)):
            score = None
        n = (result.metrics or {}).get("n", len(result.records) or None)
        row = (key, time.time(), spec.get("label") or "", spec.get("backend"), spec.get("task"),
               spec.get("model"), n, score, result.status, _dumps(spec), _dumps(result.metrics),
               _dumps(result.info), blob, codec, result.error, result.log_tail)
        try:
            self._insert(row)
        except StoreError as exc:
            if not (self.recover and exc.kind == "corrupt"):
                raise
            with self._lock:
                self._start_over()
            self._insert(row)

    def _insert(self, row: tuple) -> None:
        with self._op("store an evaluation") as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT OR REPLACE INTO evals VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
            conn.execute("COMMIT")

    def delete(self, keys: list[str]) -> int:
        with self._op("remove evaluations") as conn:
            conn.execute("BEGIN IMMEDIATE")
            n = sum(conn.execute("DELETE FROM evals WHERE key = ?", (k,)).rowcount for k in keys)
            conn.execute("COMMIT")
        return n

    def delete_all(self) -> int:
        with self._op("remove every evaluation") as conn:
            return conn.execute("DELETE FROM evals").rowcount

    def delete_older_than(self, days: float) -> int:
        cutoff = time.time() - days * 86400
        with self._op("remove old evaluations") as conn:
            return conn.execute("DELETE FROM evals WHERE created < ?", (cutoff,)).rowcount

    # -- claims -----------------------------------------------------------------------------
    def claim(self, key: str, ttl: float) -> dict | None:
        """Claim ``key`` for this process for ``ttl`` seconds: None when it is ours now, else its live
        holder ``{"host", "pid", "since"}``. A claim whose process is gone (same host; a reused pid is
        told apart by its start time) or whose time ran out is taken over."""
        now, pid = time.time(), os.getpid()
        with self._op("claim an evaluation") as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT owner, host, pid, started, created, expires FROM claims WHERE key = ?",
                               (key,)).fetchone()
            if row is not None and row[0] != self._owner and row[5] > now and \
                    (row[1] != self._host or _alive(row[2], row[3])):
                conn.execute("COMMIT")
                return {"host": row[1], "pid": row[2], "since": row[4]}
            conn.execute("INSERT OR REPLACE INTO claims VALUES (?,?,?,?,?,?,?)",
                         (key, self._owner, self._host, pid, _process_start(pid), now, now + ttl))
            conn.execute("COMMIT")
        return None

    def release(self, key: str) -> None:
        with self._op("release a claim") as conn:
            conn.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (key, self._owner))

    # -- reads ------------------------------------------------------------------------------
    def get(self, key: str, include_unresolved: bool = False, since: float | None = None) -> EvalResult | None:
        """The stored result, or None. Unresolved rows count only with include_unresolved; ``since``:
        only a row written at or after that time."""
        with self._op("read an evaluation") as conn:
            row = conn.execute(
                "SELECT status, metrics, info, records, codec, error, log_tail, created FROM evals WHERE key = ?",
                (key,)).fetchone()
        if row is None:
            return None
        status, metrics, info, blob, codec, error, log_tail, created = row
        if (status != "ok" and not include_unresolved) or (since is not None and created < since):
            return None
        return EvalResult(status=status, records=decode_records(blob, codec), info=json.loads(info or "{}"),
                          metrics=json.loads(metrics or "{}"), error=error, log_tail=log_tail)

    def spec(self, key: str) -> dict | None:
        with self._op("read an evaluation") as conn:
            row = conn.execute("SELECT spec FROM evals WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def rows(self) -> list[dict]:
        """Summary rows for `cache ls`, newest first."""
        with self._op("list evaluations") as conn:
            cur = conn.execute(
                "SELECT key, created, label, backend, task, model, n, score, status, error "
                "FROM evals ORDER BY created DESC")
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

    def resolve_keys(self, prefixes: list[str]) -> list[str]:
        """Full keys for the given keys or unique key prefixes (as `cache ls` prints them)."""
        out = []
        with self._op("look up keys") as conn:
            hits_of = {p: [r[0] for r in conn.execute("SELECT key FROM evals WHERE key LIKE ? || '%'",
                                                      (p,)).fetchall()] for p in prefixes}
        for p in prefixes:
            hits = hits_of[p]
            if not hits:
                raise HarnessError(f"no cached evaluation with key {p!r}. List keys with `python -m harness cache ls`.")
            if len(hits) > 1:
                raise HarnessError(f"key prefix {p!r} matches {len(hits)} evaluations; give more characters.")
            out.append(hits[0])
        return out

    def __len__(self) -> int:
        with self._op("count evaluations") as conn:
            return conn.execute("SELECT COUNT(*) FROM evals").fetchone()[0]
