"""A step that stays unresolved inside the search is untestable, never a pass (in-process evaluations:
the plugin transform raises, which the evaluation reports as unresolved)."""
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


def test_unresolved_search_step_is_untestable_not_a_pass(tmp_path):
    # crash_fusion raises unless optimize_rope is on; optimize_rope carries the real fault
    s, _ = run_bisect(tmp_path, "transforms:\n  crash_fusion: {mode: raise_without_rope}\n"
                                "  optimize_rope: {fault: rope_applied_twice}\n", "--executor", "inprocess")
    assert s["verdict"] == "regressed"
    assert "optimize_rope" in [k for c in s["culprits"] for k in c["knobs"]]
    unresolved = [t for t in s["trail"] if t["status"] == "unresolved"]
    assert unresolved and all(t["outcome"] == "untestable" for t in unresolved)
    # the untestable 'full - optimize_rope' step cannot confirm the culprit, and the report says so
    p6 = s["phases"]["6"]
    assert p6["full_minus_culprits"]["verdict"] == "unresolved"
    assert s["outcome"] == "unconfirmed" and "NOT confirmed" in s["headline"]
