"""bisect on the ad-emulator: an interaction pair, a clean config, the linear strategy.

In-process evaluations and small samples (the search logic is the point); one shared evaluation
store per module, so the reference run is evaluated once.
"""
import json

import pytest

from harness.cli import main
from harness.paths import DEMO_MMLU, DEMO_MODEL

FP8_MODEL = DEMO_MODEL.parent / "demo_model_fp8"
pytestmark = pytest.mark.skipif(not (DEMO_MODEL / "config.json").is_file() or not DEMO_MMLU.is_dir(),
                                reason="demo model/data not built (scripts/build_demo.py)")
SAMPLES = "24"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("bisect-store")


def bisect(tmp_path, store, config: str, *extra) -> dict:
    cfg = tmp_path / "ad.yaml"
    cfg.write_text(config)
    out = tmp_path / "reports"
    rc = main(["bisect", "--config", str(cfg), "--samples", SAMPLES, "--executor", "inprocess", "--quiet",
               "--cache-dir", str(store), "--out", str(out), *extra])
    assert rc == 0
    (summary,) = list(out.glob("bisect-*/summary.json"))
    return json.loads(summary.read_text())


def test_interaction_pair_both_members(tmp_path, store):
    # fuse_add_rms_norm re-applies the norm weight only when fuse_rmsnorm also ran
    s = bisect(tmp_path, store, "transforms:\n  fuse_add_rms_norm: {enabled: true, fault: norm_weight_applied_twice}\n")
    assert s["outcome"] == "culprit"
    assert [sorted(c["knobs"]) for c in s["culprits"]] == [["fuse_add_rms_norm", "fuse_rmsnorm"]]
    assert s["culprits"][0]["kind"] == "interaction"
    # Phase 6 confirms it is a pair: each member alone from minimal is the same as the reference
    assert s["culprits"][0]["members_alone"] == {"fuse_rmsnorm": "same", "fuse_add_rms_norm": "same"}
    assert s["culprits"][0]["confirmed"] is True and "only together" in s["headline"]


def test_clean_config_is_same_with_no_culprit(tmp_path, store):
    s = bisect(tmp_path, store, "{}\n")
    assert s["verdict"] == "same" and s["outcome"] == "same"
    assert s["culprits"] == [] and "3" not in s["phases"]
    assert [t["phase"] for t in s["trail"]] == ["0", "1"]


def test_linear_strategy_evaluates_every_knob(tmp_path, store):
    s = bisect(tmp_path, store, "transforms:\n  optimize_rope: {fault: rope_applied_twice}\n", "--strategy", "linear")
    assert [c["knobs"] for c in s["culprits"]] == [["optimize_rope"]]
    singles = [t["on"][0] for t in s["trail"] if t["phase"] == "search" and t["on"] and len(t["on"]) == 1]
    assert singles == [k["name"] for k in s["plan"]["knobs"]]  # every knob re-enabled alone, in pipeline order
