"""Plan (knobs, categories, requirements, worst case), ablation plans and the oracle's handling of
unresolved / inconclusive steps - no model needed."""
from dataclasses import dataclass

import pytest

from harness.bisect.ablation import Ablation, load_ablation
from harness.bisect.oracle import Oracle
from harness.bisect.plan import build_plan
from harness.bisect.search import FAIL, PASS, UNTESTABLE
from harness.config import Catalogue, resolve
from harness.errors import HarnessError
from harness.evaluation.spec import EvalResult, EvalSpec

DEFAULT = {
    "transforms": {
        "build_model": {"stage": "factory"},
        "match_attention_layout": {"stage": "pattern_matcher"},
        "detect_sharding": {"stage": "sharding", "allreduce_strategy": "AUTO"},
        "sharding_transform_executor": {"stage": "sharding"},
        "fuse_fp8_linear": {"stage": "post_load_fusion"},
        "fuse_allreduce_residual_rmsnorm": {"stage": "post_load_fusion"},
        "fuse_rmsnorm": {"stage": "post_load_fusion"},
        "multi_stream_gemm": {"stage": "compile", "enabled": False},
        "compile_model": {"stage": "compile", "backend": "torch-cudagraph"},
    }
}


@pytest.fixture
def cat():
    return Catalogue(DEFAULT, "default.yaml")


def test_world_size_switches_the_sharding_path_and_fusions_require_it(cat):
    user = {"world_size": 4}
    plan = build_plan(cat, user)
    assert plan.knob_names == ["world_size", "fuse_fp8_linear", "fuse_allreduce_residual_rmsnorm", "fuse_rmsnorm",
                               "compile_backend"]
    assert plan.bundles == {"world_size": ["detect_sharding", "sharding_transform_executor"]}
    assert plan.requires == {"fuse_allreduce_residual_rmsnorm": ["world_size"]}
    minimal = resolve(cat, plan.config(user, ()))
    assert minimal["world_size"] == 1 and minimal["transforms"]["detect_sharding"]["enabled"] is False
    one = resolve(cat, plan.config(user, ["fuse_allreduce_residual_rmsnorm"]))
    assert one["world_size"] == 4 and one["transforms"]["detect_sharding"]["enabled"] is True
    assert one["transforms"]["fuse_rmsnorm"]["enabled"] is False
    assert "fuse_allreduce_residual_rmsnorm" not in plan.without(["world_size"])
    # Phase 4c: ladder 1, 2 (4 is the candidate itself) + allreduce_strategy NCCL (AUTO in force)
    p4c = next(p for p in plan.phases if p.id == "4c")
    assert p4c.runs and p4c.worst == 3
    assert plan.worst_case == sum(p.worst for p in plan.phases if p.runs)
    text = plan.render()
    assert "world_size" in text and "sharding" in text and "requires world_size" in text and "worst case:" in text


def test_phases_follow_the_input(cat):
    plan = build_plan(cat, {}, quantized=True, unquantized_model=True, aa_repeats=2)
    by = {p.id: p for p in plan.phases}
    assert by["4a"].runs and by["4a"].worst == 3 and not by["4c"].runs
    assert by["0"].worst == 3  # reference + 2 A/A repeats
    assert not build_plan(cat, {}).phases[5].runs  # 4a skipped when not quantized


def test_ablation_order_keep_and_errors(cat, tmp_path):
    p = tmp_path / "plan.yaml"
    p.write_text("knobs: [compile_backend, fuse_rmsnorm]\norder: listed\nkeep: [fuse_fp8_linear]\n")
    plan = build_plan(cat, {}, ablation=load_ablation(p))
    assert plan.knob_names == ["compile_backend", "fuse_rmsnorm"]
    assert [k.name for k in plan.kept] == ["fuse_fp8_linear"]
    assert resolve(cat, plan.config({}, ()))["transforms"]["fuse_fp8_linear"]["enabled"] is True  # kept
    p.write_text("knobs: [{pattern: 'match_.*', include_keep: true}]\n")
    plan = build_plan(cat, {}, ablation=load_ablation(p))
    assert plan.knob_names == ["match_attention_layout"]
    p.write_text("knobs: [fuse_rmsnrom]\n")
    with pytest.raises(HarnessError, match="fuse_rmsnrom.*Did you mean fuse_rmsnorm"):
        build_plan(cat, {}, ablation=load_ablation(p))
    p.write_text("knobs: [{category: multi_stream}]\n")  # multi_stream_gemm is off in this config
    with pytest.raises(HarnessError, match="selects no knob"):
        build_plan(cat, {}, ablation=load_ablation(p))
    p.write_text("knobs: [fuse_rmsnorm]\norder: random\n")
    with pytest.raises(HarnessError, match="order"):
        load_ablation(p)


def test_shipped_ablation_plans_load():
    from harness.paths import REPO_ROOT

    plans = sorted((REPO_ROOT / "ablations").glob("*.yaml"))
    assert len(plans) >= 4
    for p in plans:
        assert isinstance(load_ablation(p), Ablation)


# ------------------------------------------------------------------------------------------ oracle
@dataclass
class Cmp:
    verdict: str
    n_needed: int | None = None  # what an inconclusive comparison says would decide it

    def to_dict(self):
        return {"verdict": self.verdict}


class FakeRunner:
    """Scripted results per (label, samples); records carry the verdict the fake compare returns."""

    def __init__(self, script):
        self.script = script  # (label, samples) -> list of statuses/verdicts, consumed in order
        self.calls = []

    def evaluate(self, spec):
        self.calls.append((spec.label, spec.samples))
        seq = self.script.get((spec.label, spec.samples)) or self.script.get((spec.label, None)) or ["same"]
        v = seq.pop(0) if len(seq) > 1 else seq[0]
        if v == "crash":
            return EvalResult(status="unresolved", error="worker killed by SIGSEGV", info={})
        return EvalResult(status="ok", records=[{"id": "x", "v": v}], info={}, metrics={"score": 50.0, "n": spec.samples})


def compare(ref, cand):
    v = cand[0]["v"]
    return Cmp(v, n_needed=cand[0].get("needed", 340) if v == "inconclusive" else None)


def oracle(script, available=400):
    runner = FakeRunner(script)
    ref = EvalSpec(backend="hf", model="m", samples=100, label="ref")
    return Oracle(runner, ref, compare, available=lambda: available), runner


def test_unresolved_is_retried_once_then_untestable():
    o, r = oracle({("cand", None): ["crash", "crash"]})
    step = o.judge(EvalSpec(backend="ad", model="m", samples=100, label="cand"), "search", "p")
    assert step.verdict == "unresolved" and step.outcome == UNTESTABLE and step.attempts == 2
    assert r.calls.count(("cand", 100)) == 2
    o, r = oracle({("cand", None): ["crash", "regressed"]})
    step = o.judge(EvalSpec(backend="ad", model="m", samples=100, label="cand"), "search", "p")
    assert step.verdict == "regressed" and step.outcome == FAIL and step.attempts == 2


def test_inconclusive_is_rerun_at_the_sample_count_that_would_decide_it():
    # the comparison says 340 samples would decide it: re-run a little above that (391), with the reference
    o, r = oracle({("cand", 100): ["inconclusive"], ("cand", 391): ["same"]})
    step = o.judge(EvalSpec(backend="ad", model="m", samples=100, label="cand"), "search", "p")
    assert step.escalated_to == 391 and step.verdict == "same" and step.outcome == PASS
    assert ("ref (n=391)", 391) in r.calls  # the reference at the same, larger sample count
    # still inconclusive: sized again on the larger run (below it: doubled, capped by the data set), then
    # untestable after the second escalation
    o, r = oracle({("cand", None): ["inconclusive"]})
    step = o.judge(EvalSpec(backend="ad", model="m", samples=100, label="cand"), "s", "p")
    assert step.outcome == UNTESTABLE and step.escalated_to == 400
    assert [s for label, s in r.calls if label == "cand"] == [100, 391, 400]
    o, r = oracle({("cand", 100): ["inconclusive"]}, available=100)  # the data set has no more samples
    step = o.judge(EvalSpec(backend="ad", model="m", samples=100, label="cand"), "s", "p")
    assert step.outcome == UNTESTABLE and step.escalated_to is None
