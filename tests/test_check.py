"""`check` speaks git bisect run's protocol: 0 good, 1 bad, 125 untestable (crash, timeout, OOM,
engine rejects the input), 128 the command itself is wrong (git bisect aborts)."""
from __future__ import annotations

import json

import pytest

import executor_backends
from harness.cli import main
from harness.paths import DEMO_MMLU


@pytest.fixture
def toy(monkeypatch, tmp_path):
    executor_backends.install(monkeypatch)

    def run(*args):
        return main(["check", "--model", "toy-model", "--dataset", str(DEMO_MMLU), "--samples", "12",
                     "--cache-dir", str(tmp_path / "cache"), *args])
    return run


def test_good_and_bad_against_a_threshold(toy, capsys):
    assert toy("--backend", "toy", "--threshold", "0") == 0
    assert "GOOD (exit 0)" in capsys.readouterr().out
    assert toy("--backend", "toy", "--threshold", "100.5") == 1
    assert "BAD (exit 1)" in capsys.readouterr().out


def test_reference_score_uses_trtllm_threshold(toy, capsys):
    # toy scores are deterministic; the threshold at n=12 is ref - 1.645*sqrt(2*50^2/12) = ref - 33.58
    assert toy("--backend", "toy", "--reference-score", "50", "--json") in (0, 1)
    out = json.loads(capsys.readouterr().out)
    from scipy.stats import norm

    assert out["threshold"] == pytest.approx(50 + norm.ppf(0.05) * (2 * 50**2 / 12) ** 0.5, abs=1e-9)
    assert out["exit_code"] == (0 if out["score"] >= out["threshold"] else 1)
    # a reference far above the score is bad, far below is good
    assert toy("--backend", "toy", "--reference-score", str(out["score"] + 40)) == 1
    assert toy("--backend", "toy", "--reference-score", str(out["score"] + 30)) == 0


@pytest.mark.parametrize("backend, extra, expect", [
    ("segv", [], "SIGSEGV"),  # worker crash
    ("hang", ["--timeout", "4"], "timeout after 4"),  # hang
    ("exit3", [], "exited with code 3"),
    ("badinput", [], "engine rejected the input"),  # e.g. a transform this engine version lacks
])
def test_untestable_is_125(toy, capsys, backend, extra, expect):
    assert toy("--backend", backend, "--threshold", "0", *extra) == 125
    out = capsys.readouterr().out
    assert out.startswith("UNTESTABLE (exit 125)") and expect in out


def test_command_errors_abort_git_bisect_with_128(toy, capsys, tmp_path):
    assert toy("--backend", "toy") == 128  # no reference / threshold
    assert "exactly one of" in capsys.readouterr().err
    assert toy("--backend", "nope", "--threshold", "1") == 128
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "mmlu.yaml").write_text("toy-model:\n  - accuracy: 50\n")
    assert toy("--backend", "toy", "--references", str(tmp_path / "refs"), "--spec", "quant_algo=FP8") == 128
    assert "Not registered specs" in capsys.readouterr().err
    assert toy("--backend", "toy", "--references", str(tmp_path / "refs")) in (0, 1)
    assert main(["check", "--threshold", "1", "--samples", "many"]) == 128  # a usage error (check parses its own arguments)
