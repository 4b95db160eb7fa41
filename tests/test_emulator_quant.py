"""FP8 on the emulator: the quantize/fuse transforms act only on a checkpoint that declares FP8
(hf_quant_config.json), fake-quant reproduces the FP8 checkpoint exactly, the W8A8 kernel path
stays within its stated tolerance, and each FP8 fault shows its documented symptom -- in the
kernel (gone with fuse_fp8_linear disabled, docs/method.md Phase 4a) or in the scales (not gone)."""
from __future__ import annotations

import pytest

from harness.backends.emulator.fp8_checkpoint import build_fp8_checkpoint
from harness.paths import DEMO_MODEL
from tests.test_emulator_faults import _eval, acc, agreement, letter_kl


@pytest.fixture(scope="module")
def fp8_model(tmp_path_factory):
    if not (DEMO_MODEL / "config.json").is_file():
        pytest.skip("demo model not built")
    return build_fp8_checkpoint(DEMO_MODEL, tmp_path_factory.mktemp("fp8") / "demo_model_fp8")


@pytest.fixture(scope="module")
def ref(fp8_model):
    return _eval("hf", model=fp8_model)


def _q(fp8_model, transforms):
    return _eval("ad-emulator", {"transforms": transforms}, model=fp8_model)


def test_fake_quant_reproduces_the_fp8_checkpoint(fp8_model, ref):
    res = _q(fp8_model, {"fuse_fp8_linear": {"enabled": False}})
    recs = {r["transform"]: r for r in res.info["transforms"]}
    assert recs["quantize_fp8_linear_from_config"]["num_matches"] == 14  # 2 layers x 7 linears, lm_head excluded
    assert recs["fuse_fp8_linear"]["enabled"] is False
    assert [r["output"] for r in res.records] == [r["output"] for r in ref.records]
    assert letter_kl(ref, res) < 1e-9


def test_fp8_kernel_path_is_within_tolerance(fp8_model, ref):
    res = _q(fp8_model, {})
    recs = {r["transform"]: r for r in res.info["transforms"]}
    assert recs["fuse_fp8_linear"]["num_matches"] == 14
    assert agreement(ref, res) >= 0.9  # measured 0.97 on 300 samples
    assert 0 < letter_kl(ref, res) < 5e-3  # measured 5.7e-4
    assert abs(acc(res) - acc(ref)) <= 7


def test_quant_transforms_do_nothing_on_an_unquantized_checkpoint():
    res = _eval("ad-emulator", {"transforms": {"quantize_fp8_linear_from_config": {"fault": "inverted_scale"}}}, n=12)
    recs = {r["transform"]: r for r in res.info["transforms"]}
    assert recs["quantize_fp8_linear_from_config"]["skipped"] and recs["fuse_fp8_linear"]["skipped"]
    assert acc(res) > 40


def test_scale_fault_in_the_checkpoint_scales_survives_fake_quant(fp8_model, ref):
    res = _q(fp8_model, {"quantize_fp8_linear_from_config": {"fault": "missing_dequant_scale"},
                         "fuse_fp8_linear": {"enabled": False}})
    assert acc(res) <= 40 and agreement(ref, res) < 0.4  # near chance, letters still emitted
    assert sum(r["parsed"] is not None for r in res.records) > len(res.records) / 2


def test_kernel_faults_vanish_in_fake_quant_mode(fp8_model, ref):
    for fault in ("inverted_scale", "to_instead_of_view", "missing_dequant_scale"):
        res = _q(fp8_model, {"fuse_fp8_linear": {"fault": fault}})
        assert acc(res) <= 35 and agreement(ref, res) < 0.3, fault
    off = _q(fp8_model, {"fuse_fp8_linear": {"enabled": False, "fault": "inverted_scale"}})
    assert agreement(ref, off) == 1.0


def test_inverted_scale_collapses_to_empty_output(fp8_model, ref):
    res = _q(fp8_model, {"quantize_fp8_linear_from_config": {"fault": "inverted_scale"}})
    assert acc(res) == 0 and sum(r["output"] == "" for r in res.records) >= 0.9 * len(res.records)


def test_wrong_block_scale_is_major_but_not_catastrophic(fp8_model, ref):
    res = _q(fp8_model, {"fuse_fp8_linear": {"enabled": False},
                         "quantize_fp8_linear_from_config": {"fault": "wrong_block_scale"}})
    assert letter_kl(ref, res) > 0.05 and agreement(ref, res) < 0.9
    assert acc(res) > 30


def test_shipped_fp8_checkpoint_matches_the_demo_model(fp8_model):
    """harness/assets/demo_model_fp8 must be rebuilt (python -m harness.backends.emulator.fp8_checkpoint)
    whenever the demo model changes."""
    import json

    from safetensors.torch import load_file

    from harness.backends.emulator.fp8_checkpoint import DEMO_MODEL_FP8

    if not (DEMO_MODEL_FP8 / "model.safetensors").is_file():
        pytest.skip("demo_model_fp8 not built")
    shipped, fresh = load_file(str(DEMO_MODEL_FP8 / "model.safetensors")), load_file(str(fp8_model / "model.safetensors"))
    assert shipped.keys() == fresh.keys()
    assert all(bool((shipped[k] == fresh[k]).all()) for k in fresh), "demo_model_fp8 is stale: rebuild it"
    q = json.loads((DEMO_MODEL_FP8 / "hf_quant_config.json").read_text())["quantization"]
    assert q["quant_algo"] == "FP8"
