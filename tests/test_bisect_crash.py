"""A worker that segfaults or hangs is an `unresolved` step (retried once), never a crash of bisect;
a step that stays unresolved inside the search is untestable, never a pass.

The segfault and hang tests go through real worker processes (--executor local)."""

import pytest

from bisect_helpers import needs_demo, run_bisect

pytestmark = needs_demo


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("crash-store")


@pytest.fixture(scope="module")
def segv_run(tmp_path_factory, store):
    """The segfault bisect (it also leaves the reference run in the shared store)."""
    return run_bisect(tmp_path_factory.mktemp("segv"), "transforms:\n  crash_fusion: {mode: segv}\n",
                      "--executor", "local", store=store)


def check_unresolved(s, run_dir):
    assert s["verdict"] == "unresolved" and s["outcome"] == "unresolved"
    cand = [t for t in s["trail"] if t["phase"] == "1"][0]
    assert cand["status"] == "unresolved" and cand["outcome"] == "untestable"
    attempts = {r["index"]: r["attempts"] for r in s["run"]["steps"]}
    assert attempts[cand["index"]] == 2  # retried once
    assert cand["error"]  # what the executor saw (signal / timeout), shown in the report
    assert "triage" in " ".join(s["next_steps"])
    md = (run_dir / "report.md").read_text()
    assert md.startswith("# AD accuracy bisect") and "**UNRESOLVED" in md
    assert "## Unresolved evaluations" in md and cand["error"][:40] in md  # the failure and its log, shown
    return cand


def test_segfaulting_worker_is_unresolved_and_bisect_finishes(segv_run):
    cand = check_unresolved(*segv_run)
    assert "SIGSEGV" in cand["error"] or "signal" in cand["error"].lower() or "-11" in cand["error"]


def test_hanging_worker_times_out_and_bisect_finishes(tmp_path, store, segv_run):
    # the reference is already in the store (segv_run), so only the hanging candidate meets the timeout
    s, run_dir = run_bisect(tmp_path, "transforms:\n  crash_fusion: {mode: hang}\n", "--executor", "local",
                            "--eval-timeout", "3", store=store)
    cand = check_unresolved(s, run_dir)
    assert "timeout" in cand["error"].lower() or "timed out" in cand["error"].lower()
