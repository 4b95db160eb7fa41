"""`python -m harness cache ls|rm`: list or remove stored evaluations.

    python -m harness cache ls [--cache-dir .harness] [--json]
    python -m harness cache rm KEY [KEY...]      # full keys or unique prefixes from `ls`
    python -m harness cache rm --all
    python -m harness cache rm --older-than DAYS

Only ``ok`` evaluations are served from the cache; ``unresolved`` ones are listed (status
column) but re-run on the next attempt. A corrupt store stops every command with one line naming
the file; ``cache rm --all`` then moves it aside (``evals.sqlite.corrupt-<time>``) and starts a
new one (``harness/evaluation/store.py``).
"""
from __future__ import annotations

import argparse
import json
import time

from harness.errors import HarnessError


def add_arguments(parser) -> None:
    parser.add_argument("--cache-dir", default=".harness", help="Cache directory (default: .harness).")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    ls = sub.add_parser("ls", help="List stored evaluations, newest first.")
    ls.add_argument("--json", action="store_true", help="One JSON object per line instead of a table.")
    ls.add_argument("--cache-dir", default=argparse.SUPPRESS, help="Cache directory (default: .harness).")
    rm = sub.add_parser("rm", help="Remove stored evaluations.")
    rm.add_argument("keys", nargs="*", metavar="KEY", help="Keys or unique key prefixes (as `ls` shows).")
    rm.add_argument("--all", action="store_true", help="Remove every stored evaluation.")
    rm.add_argument("--older-than", type=float, metavar="DAYS", help="Remove evaluations older than DAYS days.")
    rm.add_argument("--cache-dir", default=argparse.SUPPRESS, help="Cache directory (default: .harness).")


def _table(rows: list[dict]) -> str:
    """Text columns left-aligned (labels can be long), numbers right-aligned."""
    from pathlib import Path

    if not rows:
        return "(no stored evaluations)"
    table = [{
        "key": r["key"][:12],
        "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"])),
        "status": r["status"] or "",
        "backend": r["backend"] or "",
        "task": r["task"] or "",
        "model": Path(r["model"] or "").name,
        "n": "" if r["n"] is None else str(int(r["n"])),
        "score": "" if r["score"] is None else f"{r['score']:.2f}",
        "label": r["label"] or "",
    } for r in rows]
    cols = list(table[0])
    width = {c: max(len(c), *(len(row[c]) for row in table)) for c in cols}

    def line(row: dict) -> str:
        return "  ".join(row[c].rjust(width[c]) if c in NUMERIC else row[c].ljust(width[c]) for c in cols).rstrip()

    return "\n".join([line({c: c for c in cols})] + [line(row) for row in table])


NUMERIC = ("n", "score")


def run(args) -> int:
    from harness.evaluation.store import Store

    cache_dir = getattr(args, "cache_dir", None) or ".harness"
    if args.action is None:
        raise HarnessError("cache needs an action: ls or rm. Example: python -m harness cache ls")
    if args.action == "rm":
        _check_rm_args(args)
    recover = args.action == "rm" and bool(args.all)
    with Store(cache_dir, recover=recover) as store:
        if store.moved_aside is not None:
            print(f"the cache database was corrupt: moved it aside to {store.moved_aside}; started a new, empty "
                  f"store at {store.path}")
            return 0
        if args.action == "ls":
            rows = store.rows()
            if args.json:
                for r in rows:
                    print(json.dumps(r, default=str))
            else:
                print(_table(rows))
            return 0
        if args.all:
            n = store.delete_all()
        elif args.older_than is not None:
            n = store.delete_older_than(args.older_than)
        else:
            n = store.delete(store.resolve_keys(args.keys))
        print(f"removed {n} evaluation(s) from {store.path}")
    return 0


def _check_rm_args(args) -> None:
    given = sum([bool(args.keys), bool(args.all), args.older_than is not None])
    if given != 1:
        raise HarnessError("cache rm needs exactly one of: KEY..., --all, --older-than DAYS.")
    if args.older_than is not None and args.older_than < 0:
        raise HarnessError(f"--older-than {args.older_than:g} must be >= 0 days.")
