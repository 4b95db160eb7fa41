"""The evaluation store: one SQLite row per evaluation, keyed by everything that can change it.

``<cache_dir>/evals.sqlite`` (stdlib sqlite3, WAL journal). Each write is one transaction, so a
process killed at any moment (SIGKILL included) leaves either the whole row or none; a rerun
continues from the rows that exist. Several processes may share one cache (busy timeout).

Only ``ok`` results are served from the cache: an ``unresolved`` one (crash, hang, OOM) is stored
so ``cache ls`` and the report can show it, but ``get`` ignores it and the next attempt re-runs it
(the engine may have been fixed, or the failure was transient).
"""
from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
import zlib
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


class Store:
    def __init__(self, cache_dir: str | Path = ".harness"):
        self.cache_dir = Path(cache_dir)
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HarnessError(f"cannot create cache dir {str(cache_dir)!r}: {exc.strerror}. "
                               "Pass a writable --cache-dir.") from None
        self.path = self.cache_dir / DB_NAME
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False,
                                         isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
            if self._conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise HarnessError(f"cache database {str(self.path)!r} is unusable ({exc}). "
                               "Remove it or pass another --cache-dir.") from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- writes -----------------------------------------------------------------------------
    def put(self, key: str, spec: dict, result: EvalResult) -> None:
        """Insert or replace the row for ``key`` in one transaction."""
        blob, codec = encode_records(result.records)
        score = (result.metrics or {}).get("score")
        if not isinstance(score, (int, float)) or (isinstance(score, float) and not math.isfinite(score)):
            score = None
        n = (result.metrics or {}).get("n", len(result.records) or None)
        row = (key, time.time(), spec.get("label") or "", spec.get("backend"), spec.get("task"),
               spec.get("model"), n, score, result.status, _dumps(spec), _dumps(result.metrics),
               _dumps(result.info), blob, codec, result.error, result.log_tail)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("INSERT OR REPLACE INTO evals VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def delete(self, keys: list[str]) -> int:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            n = 0
            for k in keys:
                n += self._conn.execute("DELETE FROM evals WHERE key = ?", (k,)).rowcount
            self._conn.execute("COMMIT")
        return n

    def delete_all(self) -> int:
        with self._lock:
            return self._conn.execute("DELETE FROM evals").rowcount

    def delete_older_than(self, days: float) -> int:
        cutoff = time.time() - days * 86400
        with self._lock:
            return self._conn.execute("DELETE FROM evals WHERE created < ?", (cutoff,)).rowcount

    # -- reads ------------------------------------------------------------------------------
    def get(self, key: str, include_unresolved: bool = False) -> EvalResult | None:
        """The stored result, or None. Unresolved rows count only with include_unresolved."""
        with self._lock:
            row = self._conn.execute(
                "SELECT status, metrics, info, records, codec, error, log_tail FROM evals WHERE key = ?",
                (key,)).fetchone()
        if row is None:
            return None
        status, metrics, info, blob, codec, error, log_tail = row
        if status != "ok" and not include_unresolved:
            return None
        return EvalResult(status=status, records=decode_records(blob, codec), info=json.loads(info or "{}"),
                          metrics=json.loads(metrics or "{}"), error=error, log_tail=log_tail)

    def spec(self, key: str) -> dict | None:
        with self._lock:
            row = self._conn.execute("SELECT spec FROM evals WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def rows(self) -> list[dict]:
        """Summary rows for `cache ls`, newest first."""
        with self._lock:
            cur = self._conn.execute(
                "SELECT key, created, label, backend, task, model, n, score, status, error "
                "FROM evals ORDER BY created DESC")
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

    def resolve_keys(self, prefixes: list[str]) -> list[str]:
        """Full keys for the given keys or unique key prefixes (as `cache ls` prints them)."""
        out = []
        with self._lock:
            for p in prefixes:
                hits = [r[0] for r in self._conn.execute(
                    "SELECT key FROM evals WHERE key LIKE ? || '%'", (p,)).fetchall()]
                if not hits:
                    raise HarnessError(f"no cached evaluation with key {p!r}. List keys with `python -m harness cache ls`.")
                if len(hits) > 1:
                    raise HarnessError(f"key prefix {p!r} matches {len(hits)} evaluations; give more characters.")
                out.append(hits[0])
        return out

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM evals").fetchone()[0]
