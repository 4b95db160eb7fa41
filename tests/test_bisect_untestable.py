"""A step that stays unresolved inside the search is untestable, never a pass (in-process evaluations:
the plugin transform raises, which the evaluation reports as unresolved)."""

from bisect_helpers import needs_demo, run_bisect

pytestmark = needs_demo


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
