"""scripts/bench_detection.py on a tiny grid: the structure of a cell's result and properties any sane
verdict has (bit-identical runs are never called regressed; a 20-point fault at n = 200 is). The
benchmark's own targets are measured by the script, not asserted here."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_detection.py"
SIGMA = 0.1  # per-side logit noise, about the realistic regime on the synthetic population
DRAWS = 40


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_detection_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def pop(bench):
    return bench.synthetic_population(n_items=2000, seed=0)


def _check_structure(bench, result, ns, draws):
    assert list(result) == [str(n) for n in ns]
    for rates in result.values():
        assert rates["draws"] == draws
        assert sum(rates["counts"].values()) + sum(rates.get("other_verdicts", {}).values()) == draws
        assert sum(rates[v] for v in bench.VERDICTS) == pytest.approx(sum(rates["counts"].values()) / draws)
        assert all(0.0 <= rates[v] <= 1.0 for v in bench.VERDICTS)


def test_bit_identical_runs_are_never_regressed(bench, pop):
    cell = bench.Cell("logprobs", pop.name, "none", "aa", "none")
    ref, cand, gold = bench.draw_pair(cell, pop, 50, np.random.default_rng(0))
    assert np.array_equal(ref, cand)  # regime "none", no fault: bit for bit
    result = bench.run_cell(cell, pop, ns=(50, 200), draws=DRAWS)
    _check_structure(bench, result, (50, 200), DRAWS)
    for rates in result.values():
        assert rates["regressed"] == 0 and rates["improved"] == 0
        assert rates["observed_mean_accuracy_diff_points"] == 0.0


def test_twenty_point_fault_is_regressed_at_n200(bench, pop):
    mc = bench.MonteCarlo(pop, seed=0, rows=20_000)
    share = 20.0 / -mc.effects("corrupt", 1.0, SIGMA)["accuracy_points"]
    cell = bench.Cell("logprobs", pop.name, "realistic", "corrupt_20", "corrupt", SIGMA, share, "fault", 20.0)
    truth = mc.effects("corrupt", share, SIGMA)
    assert truth["accuracy_points"] == pytest.approx(-20.0, abs=1e-6)  # the calibration's own replicates
    assert truth["expected_accuracy_points"] < -10.0
    result = bench.run_cell(cell, pop, ns=(200,), draws=DRAWS)
    _check_structure(bench, result, (200,), DRAWS)
    assert result["200"]["regressed"] >= 0.9, result
    assert result["200"]["observed_mean_accuracy_diff_points"] == pytest.approx(-20.0, abs=3.0)


def test_accuracy_only_records_and_a_twenty_point_fault(bench, pop):
    mc = bench.MonteCarlo(pop, seed=0, rows=20_000)
    share = 20.0 / -mc.effects("corrupt", 1.0, SIGMA)["accuracy_points"]
    cell = bench.Cell("accuracy_only", pop.name, "accuracy_only", "corrupt_20", "corrupt", SIGMA, share, "fault", 20.0)
    ref, cand, gold = bench.draw_pair(cell, pop, 20, np.random.default_rng(1))
    records = bench.build_records(cand, gold, with_logprobs=False)
    assert all(r["answer_logprobs"] is None for r in records)
    assert [r["correct"] for r in records] == list(cand.argmax(1) == gold)
    assert bench.run_cell(cell, pop, ns=(200,), draws=DRAWS)["200"]["regressed"] >= 0.9


def test_draws_are_independent_and_reproducible(bench, pop):
    cell = bench.Cell("logprobs", pop.name, "realistic", "aa", "none", SIGMA)
    draws = [bench.draw_pair(cell, pop, 50, np.random.default_rng(bench._seed(cell, 0, 50, d))) for d in range(3)]
    assert not np.array_equal(draws[0][0], draws[1][0])  # fresh items and noise per draw
    again = bench.draw_pair(cell, pop, 50, np.random.default_rng(bench._seed(cell, 0, 50, 0)))
    assert np.array_equal(draws[0][0], again[0]) and np.array_equal(draws[0][1], again[1])
    ref, cand, _ = draws[0]
    assert not np.array_equal(ref, cand)  # both sides carry their own noise
