"""A bisect with parallel evaluations (--max-parallel 2) judges exactly what one at a time judges: the
same trail, verdicts and culprits; it only evaluates ahead (candidates with their references, the
escalations an inconclusive comparison asks for, Phase 6's checks together)."""
from __future__ import annotations

import pytest

from bisect_helpers import bisect_inprocess as bisect, needs_demo

pytestmark = needs_demo

INTERACTION = ("transforms:\n  fuse_rmsnorm: {enabled: true}\n"
               "  fuse_add_rms_norm: {enabled: true, fault: norm_weight_applied_twice, fault_strength: 4}\n")
# the fault costs about 8 points: a minimum effect of 5 keeps "same" at a few hundred pairs or fewer, which
# keeps this bisect (and its escalations) short
FAST = ("--min-effect", "5")


def trail(summary: dict) -> list[tuple]:
    return [(s["phase"], s["purpose"], s["verdict"], s["samples"], s["escalated_to"], s["score"])
            for s in summary["trail"]]


def test_parallel_bisect_judges_the_same_trail_as_one_at_a_time(tmp_path):
    store = tmp_path / "store"
    for d in ("p1", "p2"):
        (tmp_path / d).mkdir()
    par = bisect(tmp_path / "p2", store, INTERACTION, "--max-parallel", "2", *FAST)
    assert par["culprits"] and par["culprits"][0]["knobs"] == ["fuse_rmsnorm", "fuse_add_rms_norm"]
    assert par["run"]["runner"]["reused"] > 0  # evaluated ahead, then read back by the judging
    one = bisect(tmp_path / "p1", store, INTERACTION, "--max-parallel", "1", *FAST)
    assert one["run"]["runner"]["evaluations_run"] == 0  # the parallel run evaluated all it needs
    assert trail(one) == trail(par)
    assert one["verdict"] == par["verdict"] and one["culprits"] == par["culprits"]
    assert any(s["escalated_to"] for s in par["trail"])  # escalations went through the parallel path
    # read-backs of this run's own evaluations are not "cached" (that means an earlier run's)
    assert par["run"]["steps"] and not any(s["cached"] for s in par["run"]["steps"])
