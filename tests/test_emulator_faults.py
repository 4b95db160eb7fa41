"""Each planted fault produces the symptom configs/emulator/FAULTS.md promises, on the demo model,
only under its condition (host enabled, world_size > 1, compiled backend, both transforms of the
interaction pair), and disappears when its host transform is disabled."""
from __future__ import annotations

import math

import pytest

from harness.evaluation.run import run_evaluation

from harness.evaluation.spec import EvalSpec
from harness.paths import DEMO_MODEL

N = 60  # 10 per demo subject
# These tests isolate the transforms and their faults: the cross-engine noise every emulator config
# carries by default (engine_noise, configs/emulator/default.yaml) is off unless a test sets it;
# tests/test_emulator_noise.py tests the noise.
NOISE_OFF = {"engine_noise": {"strength": 0}}


def _eval(backend, config=None, model=DEMO_MODEL, n=N):
    config = dict(config or {})
    if backend == "ad-emulator":
        config = {**NOISE_OFF, **config}
    res = run_evaluation(EvalSpec(backend=backend, model=str(model), config=config, samples=n))
    assert res.status == "ok", res.error
    return res


def letter_kl(ref, cand) -> float:
    """Mean KL(ref || cand) of the answer-letter distributions (renormalised over A-D)."""
    out = []
    for a, b in zip(ref.records, cand.records):
        pa = {k: math.exp(v) for k, v in a["answer_logprobs"].items()}
        pb = {k: math.exp(v) for k, v in b["answer_logprobs"].items()}
        za, zb = sum(pa.values()), sum(pb.values())
        out.append(sum(pa[k] / za * (math.log(pa[k] / za) - math.log(pb[k] / zb)) for k in pa))
    return sum(out) / len(out)


def agreement(ref, cand) -> float:
    return sum(a["output"] == b["output"] for a, b in zip(ref.records, cand.records)) / len(ref.records)


def acc(res) -> float:
    return res.metrics["score"]


@pytest.fixture(scope="module")
def ref():
    if not (DEMO_MODEL / "config.json").is_file():
        pytest.skip("demo model not built")
    res = _eval("hf")
    assert acc(res) > 50, "the demo model should be well above chance"
    return res


def test_rope_applied_twice_drops_to_chance(ref):
    res = _eval("ad-emulator", {"transforms": {"optimize_rope": {"fault": "rope_applied_twice"}}})
    assert acc(res) <= 40 and agreement(ref, res) < 0.4
    off = _eval("ad-emulator", {"transforms": {"optimize_rope": {"enabled": False, "fault": "rope_applied_twice"}}})
    assert agreement(ref, off) == 1.0 and letter_kl(ref, off) == 0.0


def test_kv_cache_garbage_gives_empty_outputs_with_finite_logprobs(ref):
    res = _eval("ad-emulator", {"transforms": {"initialize_cache": {"fault": "kv_cache_garbage"}}})
    assert all(r["output"] == "" for r in res.records)
    assert not any(r["nonfinite"] for r in res.records)
    assert acc(res) == 0


def test_nan_on_prefill_gives_nonfinite_logprobs(ref):
    res = _eval("ad-emulator", {"transforms": {"match_repeat_kv": {"fault": "nan_on_prefill"}}})
    assert all(r["nonfinite"] for r in res.records)
    assert not any(r["nonfinite"] for r in ref.records)


def test_wrong_softmax_scale_is_a_mid_size_fault(ref):
    res = _eval("ad-emulator", {"transforms": {"insert_cached_attention": {"fault": "wrong_softmax_scale"}}})
    assert letter_kl(ref, res) > 0.05 and agreement(ref, res) < 0.9  # answers move ...
    assert acc(res) > 40  # ... but not to chance


def test_hardcoded_eps_is_graded(ref):
    mild = _eval("ad-emulator", {"transforms": {"fuse_rmsnorm": {"fault": "hardcoded_eps"}}})
    strong = _eval("ad-emulator", {"transforms": {"fuse_rmsnorm": {"fault": "hardcoded_eps", "fault_strength": 0.3}}})
    assert 0.05 < letter_kl(ref, mild) < letter_kl(ref, strong)
    assert acc(mild) > acc(ref) - 15  # about -6 points on 1200 samples
    assert acc(strong) < acc(ref) - 15


def test_low_precision_rope_is_the_few_points_fault_and_graded(ref):
    subtle = _eval("ad-emulator", {"transforms": {"optimize_rope": {"fault": "low_precision_rope"}}})
    strong = _eval("ad-emulator", {"transforms": {"optimize_rope": {"fault": "low_precision_rope",
                                                                    "fault_strength": 3}}})
    assert 0.02 < letter_kl(ref, subtle) < letter_kl(ref, strong)
    assert acc(subtle) > acc(ref) - 12  # about -3 points on 1200 samples
    assert acc(strong) <= 40


def test_low_precision_norm_moves_logprobs_not_accuracy(ref):
    res = _eval("ad-emulator", {"transforms": {"fuse_rmsnorm": {"fault": "low_precision_norm"}}})
    assert 1e-4 < letter_kl(ref, res) < 5e-2
    assert abs(acc(res) - acc(ref)) <= 10


def test_compiled_lowering_bug_only_with_a_compiled_backend(ref):
    cfg = {"transforms": {"fuse_silu_mul": {"fault": "compiled_lowering_bug"}}}
    eager = _eval("ad-emulator", {**cfg, "compile_backend": "torch-simple"})
    graphs = _eval("ad-emulator", {**cfg, "compile_backend": "torch-cudagraph"})
    assert agreement(ref, eager) == 1.0 and letter_kl(ref, eager) == 0.0
    assert acc(graphs) < acc(ref) - 15


def test_norm_weight_pair_is_wrong_only_together(ref):
    alone = _eval("ad-emulator", {"transforms": {
        "fuse_rmsnorm": {"enabled": False},
        "fuse_add_rms_norm": {"enabled": True, "fault": "norm_weight_applied_twice"}}})
    together = _eval("ad-emulator", {"transforms": {
        "fuse_add_rms_norm": {"enabled": True, "fault": "norm_weight_applied_twice"}}})
    assert agreement(ref, alone) == 1.0 and letter_kl(ref, alone) == 0.0
    assert letter_kl(ref, together) > 5e-3 and agreement(ref, together) < 1.0
    # fuse_rmsnorm alone (the default pipeline) is exact as well: see test_emulator_clean.py


SHARDING_FAULTS = {
    "sharding_transform_executor": "double_allreduce",
    "detect_sharding": "shard_gate_projection",
    "fuse_allreduce_residual_rmsnorm": "lowprecision_allreduce",
}


def test_sharding_faults_are_invisible_at_world_size_1(ref):
    res = _eval("ad-emulator", {"world_size": 1, "transforms": {
        name: {"fault": fault} for name, fault in SHARDING_FAULTS.items()}})
    assert agreement(ref, res) == 1.0 and letter_kl(ref, res) == 0.0
    recs = {r["transform"]: r for r in res.info["transforms"]}
    assert recs["detect_sharding"]["skipped"] and recs["detect_sharding"]["num_matches"] == 0


@pytest.mark.parametrize("host, fault, symptom", [
    ("sharding_transform_executor", "double_allreduce", "moves"),
    ("sharding_transform_executor", "head_reshape_stride", "catastrophic"),
    ("detect_sharding", "shard_gate_projection", "moves"),
    ("fuse_allreduce_residual_rmsnorm", "lowprecision_allreduce", "subtle"),
])
def test_sharding_faults_at_world_size_2(ref, host, fault, symptom):
    res = _eval("ad-emulator", {"world_size": 2, "transforms": {host: {"fault": fault}}})
    kl, agree = letter_kl(ref, res), agreement(ref, res)
    if symptom == "catastrophic":
        assert acc(res) <= 45 and agree < 0.5
    elif symptom == "moves":
        assert kl > 0.02 and agree < 0.95
    else:
        assert 1e-7 < kl < 1e-2 and agree >= 0.9


def test_shipped_demo_config_shows_a_clear_drop_that_its_culprit_explains(ref):
    from harness.config import load_yaml
    from harness.config.ops import set_enabled
    from harness.paths import DEMO_CONFIG

    cfg = load_yaml(DEMO_CONFIG)
    res = _eval("ad-emulator", cfg)
    assert acc(res) < acc(ref) - 20
    fixed = _eval("ad-emulator", set_enabled(cfg, "optimize_rope", False))
    assert agreement(ref, fixed) == 1.0 and letter_kl(ref, fixed) == 0.0


def test_kv_cache_garbage_also_at_world_size_2(ref):
    res = _eval("ad-emulator", {"world_size": 2, "transforms": {"initialize_cache": {"fault": "kv_cache_garbage"}}})
    assert all(r["output"] == "" for r in res.records) and not any(r["nonfinite"] for r in res.records)
