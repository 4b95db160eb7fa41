"""The evaluation store: exact round trip, only ok results served, atomic under SIGKILL, cache CLI."""
from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from harness.errors import HarnessError
from harness.evaluation.spec import EvalResult
from harness.evaluation.store import Store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _records(n: int, tag: str = "x") -> list[dict]:
    return [{"id": f"mmlu/s/{i}", "subject": "s", "output": f" {tag}{i}", "correct": i % 2 == 0,
             "answer_logprobs": {"A": -0.5, "B": float("nan"), "C": float("-inf"), "D": -2.0},
             "top_logprobs": [{" A": -0.1 * i}]} for i in range(n)]


def _result(n=5, status="ok", tag="x") -> EvalResult:
    return EvalResult(status=status, records=_records(n, tag), info={"device": "cpu"},
                      metrics={"score": 40.0, "n": n}, error=None if status == "ok" else "worker killed by SIGSEGV",
                      log_tail=None if status == "ok" else "line1\nline2")


def test_round_trip_is_exact_including_nonfinite_logprobs(tmp_path):
    with Store(tmp_path) as store:
        store.put("k" * 64, {"backend": "hf", "task": "mmlu", "model": "/m", "label": "ref"}, _result(300))
        got = store.get("k" * 64)
    assert got.status == "ok" and got.metrics == {"score": 40.0, "n": 300}
    assert len(got.records) == 300
    lp = got.records[7]["answer_logprobs"]
    assert lp["A"] == -0.5 and math.isnan(lp["B"]) and lp["C"] == float("-inf")
    assert got.records[3]["top_logprobs"] == [{" A": pytest.approx(-0.3)}]
    # large record sets are stored compressed
    codec = sqlite3.connect(tmp_path / "evals.sqlite").execute("SELECT codec FROM evals").fetchone()[0]
    assert codec == "zlib+json"


def test_unresolved_is_stored_but_not_served(tmp_path):
    with Store(tmp_path) as store:
        store.put("a" * 64, {"backend": "hf"}, _result(status="unresolved"))
        assert store.get("a" * 64) is None
        kept = store.get("a" * 64, include_unresolved=True)
        assert kept.status == "unresolved" and kept.error == "worker killed by SIGSEGV"
        assert [r["status"] for r in store.rows()] == ["unresolved"]


def test_rm_by_prefix_all_and_age(tmp_path):
    with Store(tmp_path) as store:
        for c in "abc":
            store.put(c * 64, {"backend": "hf", "task": "mmlu"}, _result())
        store.put("ab" + "0" * 62, {"backend": "hf"}, _result())
        with pytest.raises(HarnessError, match="matches 2"):
            store.resolve_keys(["a"])
        with pytest.raises(HarnessError, match="no cached evaluation"):
            store.resolve_keys(["ff"])
        assert store.delete(store.resolve_keys(["aa"])) == 1
        store._conn.execute("UPDATE evals SET created = created - 10 * 86400 WHERE key LIKE 'b%'")
        assert store.delete_older_than(5) == 1
        assert {r["key"][0] for r in store.rows()} == {"a", "c"}
        assert store.delete_all() == 2 and len(store) == 0


def main(argv: list[str]) -> int:
    """`python -m harness cache ...` as the CLI runs it (parser + run + error line), without
    importing every other command module."""
    import argparse

    from harness.commands import cache

    assert argv[0] == "cache"
    parser = argparse.ArgumentParser(prog="python -m harness cache")
    cache.add_arguments(parser)
    try:
        return cache.run(parser.parse_args(argv[1:]))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def test_cache_cli_ls_and_rm(tmp_path, capsys):
    with Store(tmp_path) as store:
        store.put("d" * 64, {"backend": "hf", "task": "mmlu", "model": "/x/demo_model", "label": "reference"}, _result(12))
        store.put("e" * 64, {"backend": "ad-emulator", "task": "mmlu", "model": "/x/demo_model"},
                  _result(status="unresolved"))
    assert main(["cache", "ls", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["key", "date", "status", "backend", "task", "model", "n", "score", "label"]
    assert any(line.startswith("dddddddddddd") and " ok " in line and "40.00" in line and line.endswith("reference")
               for line in out)
    assert any(line.startswith("eeeeeeeeeeee") and " unresolved " in line for line in out)
    # text columns left-aligned: each row's backend starts where the header's does
    col = out[0].index("backend")
    assert {line[col:].split()[0] for line in out[1:]} == {"hf", "ad-emulator"}
    assert main(["cache", "rm", "ddd", "--cache-dir", str(tmp_path)]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert main(["cache", "rm", "--cache-dir", str(tmp_path)]) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert main(["cache", "--cache-dir", str(tmp_path), "rm", "--all"]) == 0
    with Store(tmp_path) as store:
        assert len(store) == 0


def test_unwritable_cache_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(HarnessError, match="--cache-dir"):
        Store(blocker / "cache")


WRITER = textwrap.dedent("""
    import sys, itertools
    sys.path.insert(0, {tests!r})
    from test_store import _result
    from harness.evaluation.store import Store
    store = Store({cache!r})
    for i in itertools.count():
        store.put(f"{{i:064d}}", {{"backend": "hf", "label": str(i)}}, _result(2000, tag=str(i)))
        print(i, flush=True)
""")


@pytest.mark.parametrize("delay", [0.5, 0.9, 1.3])
def test_sigkill_mid_write_leaves_whole_rows_only(tmp_path, delay):
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(tests=os.path.join(REPO, "tests"), cache=str(tmp_path / "c")))
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env)
    first = proc.stdout.readline()  # at least one committed row
    assert first.strip() == b"0"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Store(tmp_path / "c") as store:
        rows = store.rows()
        assert rows, "the committed row must survive"
        for row in rows:
            got = store.get(row["key"])
            i = int(row["label"])
            assert len(got.records) == 2000 and got.records[-1]["output"] == f" {i}1999"
