"""bisect on the ad-emulator: an interaction pair, a clean config, the linear strategy.

In-process evaluations and small samples (the search logic is the point); one shared evaluation
store per module, so the reference run is evaluated once.
"""

from bisect_helpers import bisect_inprocess as bisect, needs_demo, store  # noqa: F401  (a fixture)

pytestmark = needs_demo


def test_interaction_pair_both_members(tmp_path, store):
    # fuse_add_rms_norm re-applies the norm weight only when fuse_rmsnorm also ran; strength 4 costs about
    # 8 points (configs/emulator/FAULTS.md; at strength 1 it costs 0.6, below the minimum effect: no regression)
    s = bisect(tmp_path, store, "transforms:\n  fuse_add_rms_norm: {enabled: true, fault: norm_weight_applied_twice, "
                                "fault_strength: 4}\n")
    assert s["outcome"] == "culprit"
    assert [sorted(c["knobs"]) for c in s["culprits"]] == [["fuse_add_rms_norm", "fuse_rmsnorm"]]
    assert s["culprits"][0]["kind"] == "interaction"
    # Phase 6 confirms it is a pair on fresh prompts: neither member alone from minimal regresses
    assert set(s["culprits"][0]["members_alone"]) == {"fuse_rmsnorm", "fuse_add_rms_norm"}
    assert "regressed" not in s["culprits"][0]["members_alone"].values()
    assert s["culprits"][0]["confirmed"] is True and "only together" in s["headline"]


def test_clean_config_is_same_with_no_culprit(tmp_path, store):
    s = bisect(tmp_path, store, "{}\n")
    assert s["verdict"] == "same" and s["outcome"] == "same"
    assert s["culprits"] == [] and "3" not in s["phases"]
    # Phase 0 and Phase 1 only (Phase 1 escalated until equivalence was shown, with the reference alongside)
    assert [t["phase"] for t in s["trail"] if t["phase"] != "ref"] == ["0", "1"]
    phase1 = next(t for t in s["trail"] if t["phase"] == "1")
    assert phase1["escalated_to"] and "equivalence test" in s["phases"]["1"]["comparison"]["reasons"][0]


def test_linear_strategy_evaluates_every_knob(tmp_path, store):
    s = bisect(tmp_path, store, "transforms:\n  optimize_rope: {fault: rope_applied_twice}\n", "--strategy", "linear")
    assert [c["knobs"] for c in s["culprits"]] == [["optimize_rope"]]
    singles = [t["on"][0] for t in s["trail"] if t["phase"] == "search" and t["on"] and len(t["on"]) == 1]
    assert singles == [k["name"] for k in s["plan"]["knobs"]]  # every knob re-enabled alone, in pipeline order
