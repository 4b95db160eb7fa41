"""Progress: the per-sample channel from inside generate() (harness/backends/progress.py), its tailing by
the orchestrator across a real worker process, the ETA, and one meaning of --quiet."""
from __future__ import annotations

import io

import pytest

from harness.backends import progress as channel
from harness.execution.progress import Progress
from harness.paths import DEMO_MMLU, DEMO_MODEL


def test_channel_appends_reports_and_reads_the_last_complete_one(tmp_path, monkeypatch):
    path = tmp_path / "progress"
    monkeypatch.setenv(channel.PROGRESS_FILE_ENV, str(path))
    monkeypatch.setattr(channel, "MIN_INTERVAL_S", 0.0)
    assert channel.read_samples(path) is None
    for done in (0, 32, 64):
        channel.report_samples(done, 100)
    assert channel.read_samples(path) == (64, 100)
    with open(path, "a") as f:
        f.write("samples 96 1")  # a half-written line is not read
    assert channel.read_samples(path) == (64, 100)


def test_channel_prefers_an_in_process_sink_and_never_raises(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setenv(channel.PROGRESS_FILE_ENV, str(tmp_path / "no-such-dir" / "progress"))
    channel.report_samples(1, 2)  # an unwritable file: no exception
    channel.set_sink(lambda d, t: seen.append((d, t)))
    try:
        channel.report_samples(3, 4)
    finally:
        channel.set_sink(None)
    assert seen == [(3, 4)]


def test_eta_from_finished_evaluations_and_running_samples():
    p = Progress(stream=io.StringIO())
    p.expect(4)
    t = p.start("a")
    p.finish(t, "a", _Result(), cached=False, seconds=10.0)
    t = p.start("b")
    p._running[t].t0 -= 5.0  # running for 5 s
    p.samples(t, 50, 100)  # half its samples: about 5 s more
    eta = p.eta_seconds()
    assert eta == pytest.approx(5 + 2 * 10, abs=0.5)  # + the 2 queued at the 10 s mean
    p.finish(t, "b", _Result(), cached=True, seconds=0.0)
    p.expect(2)
    assert p.eta_seconds() is None  # nothing left


def test_quiet_means_nothing_printed():
    buf = io.StringIO()
    p = Progress(quiet=True, stream=buf)
    t = p.start("a")
    p.samples(t, 1, 2)
    p.log("hello")
    p.finish(t, "a", _Result(), cached=False, seconds=1.0)
    p.close()
    assert buf.getvalue() == "" and p.mode == "silent"


class _Result:
    status, metrics, error = "ok", {"score": 50.0, "n": 2}, None


class _Recording(Progress):
    def __init__(self):
        super().__init__(quiet=True)
        self.mode = "lines"  # watch, but print nowhere
        self.stream = io.StringIO()
        self.reports = []

    def samples(self, token, done, total):
        self.reports.append((done, total))
        super().samples(token, done, total)


@pytest.mark.skipif(not (DEMO_MODEL / "config.json").is_file(), reason="demo model not built")
def test_samples_stream_from_a_worker_process(tmp_path):
    """The hf generator reports per batch in the worker; the runner tails the side file."""
    from harness.evaluation.spec import EvalSpec
    from harness.execution.runner import Runner

    progress = _Recording()
    spec = EvalSpec(backend="hf", model=str(DEMO_MODEL), dataset=str(DEMO_MMLU), samples=40,
                    sampling={"batch_size": 8})
    with Runner(cache_dir=tmp_path, progress=progress, executor="local") as r:
        res = r.evaluate(spec)
    assert res.status == "ok" and res.info["executor"]["name"] == "local"
    assert progress.reports and progress.reports[-1] == (42, 42)  # ceil(40 / 6 subjects) per subject
    assert all(0 <= d <= t for d, t in progress.reports)
    assert "harness_env" not in res.info  # the progress file is not an input of the evaluation


def test_diagnose_quiet_on_gsm8k_prints_the_result_and_what_the_demo_cannot_show(tmp_path):
    """--quiet: the result only - no library progress bar ("Loading weights"), although lm-eval's GSM8K task
    has imported huggingface_hub before the evaluation starts; the demo model's GSM8K limit is said once."""
    import os
    import subprocess
    import sys

    from harness.paths import REPO_ROOT

    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    r = subprocess.run([sys.executable, "-m", "harness", "diagnose", "--task", "gsm8k", "--dataset",
                        str(REPO_ROOT / "tests/fixtures/gsm8k_small"), "--samples", "2", "--backend", "hf",
                        "--quiet", "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Loading weights" not in r.stderr and "it/s" not in r.stderr, r.stderr[-2000:]
    assert r.stdout.startswith("accuracy: ") and r.stdout.count("note: the demo model") == 1, r.stdout
    assert "answers with a letter" in r.stdout and "judge accuracy with a real model" in r.stdout
