"""Run directories: unique names, atomic run.json + samples.jsonl, clear errors when incomplete."""
from __future__ import annotations

import math

import pytest

from harness.errors import HarnessError
from harness.evaluation.spec import EvalResult, EvalSpec
from harness.evaluation.rundir import new_run_dir, read_run, write_run


def test_new_run_dir_is_unique_and_labelled(tmp_path):
    a = new_run_dir(tmp_path, "diagnose hf/mmlu")
    b = new_run_dir(tmp_path, "diagnose hf/mmlu")
    assert a != b and a.is_dir() and b.is_dir()
    assert a.name.endswith("-diagnose-hf-mmlu") and a.name[:8].isdigit()


def test_write_and_read_round_trip(tmp_path):
    spec = EvalSpec(backend="hf", model="/m", task="mmlu", samples=2, seed=3)
    rec = {"id": "mmlu/x/1", "subject": "x", "reference": "A", "output": " A", "correct": True,
           "answer_logprobs": {"A": float("nan"), "B": -1.0}, "top_logprobs": [{"ĠA": float("-inf")}]}
    result = EvalResult(status="ok", records=[rec], metrics={"score": 100.0, "n": 1},
                        info={"torch": "2.x", "timings": {"total_s": 1.5}, "sampling": {"max_tokens": 2}})
    d = new_run_dir(tmp_path, "t")
    write_run(d, spec, result, extra={"command": "test"})
    run, records = read_run(d)
    assert run["model"] == "/m" and run["seed"] == 3 and run["status"] == "ok" and run["command"] == "test"
    assert run["timings"] == {"total_s": 1.5} and run["sampling"] == {"max_tokens": 2}
    assert run["versions"]["torch"] == "2.x" and run["metrics"]["score"] == 100.0
    assert math.isnan(records[0]["answer_logprobs"]["A"]) and records[0]["top_logprobs"][0]["ĠA"] == -math.inf
    assert not list(d.glob("*.tmp"))


def test_read_run_errors(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        read_run(tmp_path / "nope")
    d = new_run_dir(tmp_path, "empty")
    with pytest.raises(HarnessError, match="run.json"):
        read_run(d)
