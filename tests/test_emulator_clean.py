"""Without a fault every emulator transform preserves outputs: exactly, or within the float
tolerance stated in configs/emulator/FAULTS.md; plugins run in the pipeline with their context;
info() reports per-transform records like AD's log lines. The cross-engine noise is off here
(``_eval``, NOISE_OFF): these tests are about the transforms; tests/test_emulator_noise.py tests
the noise."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.paths import CONFIGS, DEMO_MODEL
from tests.test_emulator_faults import NOISE_OFF, _eval, acc, agreement, letter_kl

PLUGINS = Path(__file__).parent / "plugins"


def max_logprob_diff(ref, cand) -> float:
    return max(abs(a["answer_logprobs"][k] - b["answer_logprobs"][k])
               for a, b in zip(ref.records, cand.records) for k in a["answer_logprobs"])


@pytest.fixture(scope="module")
def ref():
    if not (DEMO_MODEL / "config.json").is_file():
        pytest.skip("demo model not built")
    return _eval("hf")


def test_default_pipeline_is_bit_exact(ref):
    res = _eval("ad-emulator", {})
    assert [r["output"] for r in res.records] == [r["output"] for r in ref.records]
    assert max_logprob_diff(ref, res) == 0.0
    info = res.info
    assert info["backend"] == "ad-emulator" and info["compile_backend"] == "torch-cudagraph"
    assert info["world_size"] == 1 and info["attn_backend"] == "trtllm"
    recs = {r["transform"]: r for r in info["transforms"]}
    assert set(recs["fuse_rmsnorm"]) >= {"stage", "transform", "enabled", "skipped", "num_matches"}
    assert recs["fuse_rmsnorm"]["num_matches"] == 5 and not recs["fuse_rmsnorm"]["skipped"]  # 2 layers x 2 + final
    assert recs["quantize_fp8_linear_from_config"]["skipped"]  # the checkpoint does not declare FP8
    assert recs["fuse_add_rms_norm"]["enabled"] is False


def test_every_optional_fusion_and_multi_stream_on_is_bit_exact(ref):
    res = _eval("ad-emulator", {"transforms": {
        "fuse_add_rms_norm": {"enabled": True}, "multi_stream_gemm": {"enabled": True},
        "multi_stream_moe": {"enabled": True}, "multi_stream_mla_attn": {"enabled": True},
        "fuse_gemms": {"enabled": True}}})
    assert max_logprob_diff(ref, res) == 0.0


def test_minimal_pipeline_is_bit_exact(ref):
    res = _eval("ad-emulator", {"compile_backend": "torch-simple", "transforms": {
        n: {"enabled": False} for n in ("fuse_rmsnorm", "fuse_silu_mul", "optimize_rope", "fuse_fp8_linear",
                                        "fuse_nvfp4_linear", "fuse_allreduce_residual_rmsnorm",
                                        "eliminate_redundant_transposes")}})
    assert max_logprob_diff(ref, res) == 0.0


@pytest.mark.parametrize("cfg", [{"attn_backend": "torch"}, {"world_size": 2}, {"world_size": 4},
                                 {"world_size": 2, "attn_backend": "torch", "compile_backend": "torch-simple"}])
def test_float_tolerance_rewrites(ref, cfg):
    """Eager-math attention and in-process TP change float summation order only."""
    res = _eval("ad-emulator", cfg)
    assert [r["output"] for r in res.records] == [r["output"] for r in ref.records]
    assert max_logprob_diff(ref, res) < 1e-4
    if cfg.get("world_size", 1) > 1:
        recs = {r["transform"]: r for r in res.info["transforms"]}
        assert recs["detect_sharding"]["num_matches"] == 14  # 2 layers x (4 attention + 3 MLP) projections
        assert recs["fuse_allreduce_residual_rmsnorm"]["num_matches"] == 2


def test_plugin_transform_runs_in_its_stage_with_context(ref, tmp_path):
    out = tmp_path / "ctx.json"
    plugin = str(PLUGINS / "swap_letters_plugin.py")
    res = _eval("ad-emulator", {"world_size": 2, "plugins": [plugin], "transforms": {
        "record_context": {"stage": "post_load_fusion", "enabled": True, "out": str(out), "my_option": 7}}})
    ctx = json.loads(out.read_text())
    assert ctx["world_size"] == 2 and ctx["compile_backend"] == "torch-cudagraph"
    assert ctx["stage"] == "post_load_fusion" and ctx["model_type"] == "llama"
    assert ctx["options"]["my_option"] == 7
    assert ctx["fused_norm"] == "LlamaRMSNorm" or ctx["fused_norm"] == "FusedRMSNorm"
    recs = [r["transform"] for r in res.info["transforms"]]
    assert recs.index("optimize_rope") < recs.index("record_context") < recs.index("insert_cached_attention")
    assert res.info["plugins"] == [plugin]


def test_plugin_fault_via_context_plugins_changes_answers(ref):
    from transformers import AutoTokenizer

    from harness.backends.hf.generate import continuation_token_id

    tok = AutoTokenizer.from_pretrained(str(DEMO_MODEL))
    a, b = continuation_token_id(tok, " A"), continuation_token_id(tok, " B")
    from harness.evaluation.run import run_evaluation
    from harness.evaluation.spec import EvalSpec

    res = run_evaluation(EvalSpec(backend="ad-emulator", model=str(DEMO_MODEL), samples=60,
                                  plugins=[str(PLUGINS / "swap_letters_plugin.py")],
                                  config={**NOISE_OFF, "transforms": {"swap_letters": {
                                      "enabled": True, "token_a": a, "token_b": b}}}))
    assert res.status == "ok"
    swapped = {"A": "B", "B": "A"}
    for r0, r1 in zip(ref.records, res.records):
        if r0["parsed"] in ("A", "B"):
            assert r1["parsed"] == swapped[r0["parsed"]]
    assert acc(res) < acc(ref)


def test_example_plugin_loads_and_runs(ref):
    res = _eval("ad-emulator", {"plugins": [str(CONFIGS / "emulator" / "plugins" / "example_plugin.py")],
                                "transforms": {"zero_attention_head": {"enabled": True}}})
    assert letter_kl(ref, res) > 1e-3 and agreement(ref, res) < 1.0


def test_clean_demo_config_is_bit_exact(ref):
    from harness.config import load_yaml

    res = _eval("ad-emulator", load_yaml(CONFIGS / "demo" / "ad_demo_clean.yaml"))
    assert max_logprob_diff(ref, res) == 0.0


def test_records_carry_the_normalised_status_and_evidence(ref):
    """The per-transform record contract (harness/bisect/effects.py): status, num_matches, stage, transform,
    evidence; skip_on_error turns a failure into ``failed`` with the error as evidence."""
    from harness.evaluation.run import run_evaluation
    from harness.evaluation.spec import EvalSpec

    plugin = str(Path(__file__).resolve().parent / "plugins" / "crash_plugin.py")
    cfg = {"plugins": [plugin], "transforms": {"optimize_rope": {"enabled": False},
                                               "crash_fusion": {"mode": "raise_without_rope", "skip_on_error": True}}}
    res = run_evaluation(EvalSpec(backend="ad-emulator", model=str(DEMO_MODEL), task="mmlu", samples=4, config=cfg))
    assert res.status == "ok", res.error
    recs = {r["transform"]: r for r in res.info["transforms"]}
    for r in recs.values():
        assert r["status"] in ("applied", "skipped", "disabled", "failed")
        assert {"stage", "transform", "num_matches", "evidence", "enabled", "skipped"} <= set(r)
    assert recs["fuse_rmsnorm"]["status"] == "applied" and recs["fuse_rmsnorm"]["evidence"] == "5 matches"
    assert recs["fuse_fp8_linear"]["status"] == "skipped"
    assert recs["optimize_rope"]["status"] == "disabled"
    assert recs["crash_fusion"]["status"] == "failed"
    assert "crash_fusion needs optimize_rope" in recs["crash_fusion"]["evidence"]
    assert res.info["transform_configs"]["crash_fusion"]["mode"] == "raise_without_rope"
