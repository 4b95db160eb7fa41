"""A worker that segfaults or hangs is an `unresolved` step (retried once), never a crash of bisect;
a step that stays unresolved inside the search is untestable, never a pass.

The segfault and hang tests go through real worker processes (--executor local)."""
import json
import textwrap

import pytest

from harness.cli import main
from harness.paths import DEMO_MMLU, DEMO_MODEL

pytestmark = pytest.mark.skipif(not (DEMO_MODEL / "config.json").is_file() or not DEMO_MMLU.is_dir(),
                                reason="demo model/data not built (scripts/build_demo.py)")

PLUGIN = textwrap.dedent('''\
    import os, signal, time

    def crash(model, options, context):
        mode = options.get("mode")
        if mode == "segv":
            print("crash_fusion: segfaulting now", flush=True)
            os.kill(os.getpid(), signal.SIGSEGV)
        if mode == "hang":
            print("crash_fusion: hanging now", flush=True)
            time.sleep(3600)
        if mode == "raise_without_rope":
            if not context["resolved_config"]["transforms"]["optimize_rope"].get("enabled", True):
                raise RuntimeError("crash_fusion needs optimize_rope")
        return 1

    TRANSFORMS = {"crash_fusion": crash}
    DEFAULTS = {"crash_fusion": {"stage": "post_load_fusion", "enabled": True}}
    CATEGORIES = {"crash_fusion": "fusion"}
    ''')


def run_bisect(tmp_path, config, *extra, store=None):
    plugin = tmp_path / "crash_plugin.py"
    plugin.write_text(PLUGIN)
    cfg = tmp_path / "ad.yaml"
    cfg.write_text(config)
    out = tmp_path / "reports"
    rc = main(["bisect", "--config", str(cfg), "--plugin", str(plugin), "--samples", "12", "--quiet",
               "--cache-dir", str(store or tmp_path / "cache"), "--out", str(out), *extra])
    assert rc == 0  # the bisect completed, whatever the verdict
    (path,) = list(out.glob("bisect-*/summary.json"))
    return json.loads(path.read_text()), path.parent


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
