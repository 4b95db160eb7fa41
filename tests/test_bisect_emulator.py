"""bisect on the ad-emulator: the planted culprit of each fault family is named and confirmed.

In-process evaluations and small samples (the search logic is the point); one shared evaluation
store per module, so the reference run is evaluated once.
"""

import pytest

from bisect_helpers import FP8_MODEL, bisect_inprocess as bisect, needs_demo, store  # noqa: F401  (a fixture)
from harness.paths import DEMO_MODEL

pytestmark = needs_demo


FAMILIES = {
    # family: (config, extra args, expected culprit groups)
    "quant scale (fp8 inverted scale in the FP8 GEMM fusion)": (
        "transforms:\n  fuse_fp8_linear: {fault: inverted_scale}\n",
        ["--model", str(FP8_MODEL), "--unquantized-model", str(DEMO_MODEL)], [["fuse_fp8_linear"]]),
    "rope applied twice": (
        "transforms:\n  optimize_rope: {fault: rope_applied_twice}\n", [], [["optimize_rope"]]),
    # a weak fault (about -1.7 points at world size 2): judged at the default minimum effect of 1 point
    "sharding at world_size 2 (double all-reduce in the fused all-reduce+norm)": (
        "world_size: 2\ntransforms:\n  fuse_allreduce_residual_rmsnorm: {fault: double_allreduce}\n",
        ["--min-effect", "1"], [["fuse_allreduce_residual_rmsnorm"]]),
    "compile-only (fusion lowered wrongly unless torch-simple)": (
        "transforms:\n  fuse_silu_mul: {fault: compiled_lowering_bug}\n", [], [["fuse_silu_mul", "compile_backend"]]),
    # about -4.3 points (configs/emulator/FAULTS.md): judged at the default minimum effect of 1 point
    "attention scale (core path; the attention ablation plan names it)": (
        "transforms:\n  match_attention_layout: {fault: wrong_softmax_scale}\n",
        ["--ablation", "ablations/attention_path.yaml", "--min-effect", "1"], [["match_attention_layout"]]),
}


# Phase 4's localization of each culprit (minimal + culprit vs the reference): the module that introduces the fault
LOCALIZED = {
    "quant scale (fp8 inverted scale in the FP8 GEMM fusion)": "model.layers.0.self_attn.q_proj",  # the first linear
    "rope applied twice": "model.layers.0.self_attn",  # the rotation inside the attention; the rotary table is right
    # the doubled all-reduce sits in the fused all-reduce + residual + norm op: inside the layer, outside its submodules
    "sharding at world_size 2 (double all-reduce in the fused all-reduce+norm)": "model.layers.0",
    "compile-only (fusion lowered wrongly unless torch-simple)": "model.layers.0.mlp",  # the fused silu*mul inside
    "attention scale (core path; the attention ablation plan names it)": "model.layers.0.self_attn",
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_names_the_planted_culprit(tmp_path, store, family):
    config, extra, expected = FAMILIES[family]
    if "--model" in extra and not (FP8_MODEL / "config.json").is_file():
        pytest.skip("demo_model_fp8 not built")
    s = bisect(tmp_path, store, config, *extra)
    assert s["verdict"] == "regressed", s["headline"]
    assert s["outcome"] == "culprit", s["headline"]
    assert sorted(sorted(c["knobs"]) for c in s["culprits"]) == sorted(sorted(g) for g in expected)
    assert all(c["confirmed"] for c in s["culprits"])
    p6 = s["phases"]["6"]
    assert p6["full_minus_culprits"]["verdict"] != "regressed"  # recovers: no regression on fresh prompts
    assert p6["minimal_plus_culprits"]["verdict"] == "regressed"
    loc = s["localization"]
    first = loc["first_divergence"]
    assert first is not None and (first["module"], first["kind"]) == (LOCALIZED[family], "isolated"), loc["finding"]
    if len(expected[0]) > 1:
        assert s["culprits"][0]["kind"] == "interaction"
    if "fp8" in family:  # Phase 4a ran: fake-quant mode (FP8 GEMM fusion off) recovers -> the kernel
        p4a = s["phases"]["4a"]
        assert p4a["fake_quant"]["kind"] == "kernel" and "fuse_fp8_linear" in p4a["fake_quant_disabled"]
        assert p4a["unquantized"]["kind"] == "quantization"  # --unquantized-model demo_model is fine
        weights = loc["weights"]  # Phase 4a step 2: every FP8 kernel divides by its scale
        assert len(weights["flagged"]) == weights["quantized_layers"] == 14
        assert all("scale inverted" in r["suspect"] for r in weights["layers"] if r["flagged"])
        from pathlib import Path

        assert "fuse_fp8_linear:" in (Path(s["_dir"]) / "fake_quant_debug.yaml").read_text()
    if "world_size 2" in family:  # Phase 4c: correct at world_size 1, wrong at 2
        assert s["phases"]["4c"]["ladder"] == {"1": "same", "2": "regressed"}
        assert s["phases"]["4c"]["kind"] == "sharding"
        assert s["culprits"][0]["with"] == ["world_size"]


def test_attention_scale_without_plan_is_a_core_path_bug(tmp_path, store):
    s = bisect(tmp_path, store, "transforms:\n  match_attention_layout: {fault: wrong_softmax_scale}\n")
    assert s["outcome"] == "core_path" and s["culprits"] == []
    assert s["phases"]["3"]["core_path_bug"] is True
    assert any("core path" in x for x in s["next_steps"])
    # Phase 4 localizes the regressing minimal config; no ladder rung recovered, so no control: the default band
    loc = s["localization"]
    assert loc["target"] == "core_path" and loc["control"] is None
    assert loc["first_divergence"]["module"] == "model.layers.0.self_attn"


def test_core_path_ladder_names_the_faulty_attention_backend(tmp_path, store):
    """A bug in the trtllm attention kernel survives the minimal config; the ladder switches the attention
    backend on the minimal config and the first other kernel recovers."""
    from pathlib import Path

    from harness.paths import CONFIGS

    s = bisect(tmp_path, store, (CONFIGS / "demo" / "ad_demo_core_path.yaml").read_text())
    assert s["outcome"] == "core_path" and s["phases"]["3"]["core_path_bug"] is True
    ladder = s["phases"]["ladder"]
    assert ladder["recovered"] == {**ladder["recovered"], "axis": "attn_backend", "from": "trtllm", "value": "flashinfer"}
    assert ladder["tried"] == 1 and ladder["offered"] >= 3
    assert "trtllm attention backend" in s["headline"]
    assert any("Core-path ladder: attention backend trtllm is the suspect" in x for x in s["next_steps"])
    ladder_steps = [t for t in s["trail"] if t["phase"] == "ladder"]
    assert [t["config_diff"] for t in ladder_steps] == [["attn_backend: trtllm -> flashinfer",
                                                         "transforms.insert_cached_attention.backend: trtllm -> flashinfer"]]
    report = (Path(s["_dir"]) / "report.md").read_text()
    assert "## Core-path ladder" in report and "attn_backend: trtllm -> flashinfer | same" in report
    assert "attn_backend: flashinfer" in (Path(s["_dir"]) / "repro" / "confirming.yaml").read_text()
    # Phase 4: the minimal config against the reference, the band measured on the recovering rung (flashinfer's own
    # bf16 rounding inside the attention stays inside it); the trtllm kernel's bug shows in the attention
    loc = s["localization"]
    assert "flashinfer" in loc["control"]
    assert (loc["first_divergence"]["module"], loc["first_divergence"]["kind"]) == ("model.layers.0.self_attn", "isolated")


def test_no_op_knobs_are_pruned_and_never_switched_on(tmp_path, store):
    """On the unquantized demo model the FP8/NVFP4 fusions have nothing to do: the full run reports them
    skipped, the plan lists them as no effect, and no search probe switches them on."""
    from pathlib import Path

    from harness.paths import CONFIGS

    s = bisect(tmp_path, store, (CONFIGS / "demo" / "ad_demo.yaml").read_text())
    assert s["outcome"] == "culprit" and [c["knobs"] for c in s["culprits"]] == [["optimize_rope"]]
    pruned = {d["name"]: d for d in s["phases"]["prune"]["no_effect"]}
    assert {"fuse_fp8_linear", "fuse_nvfp4_linear", "eliminate_redundant_transposes"} <= set(pruned)
    assert pruned["fuse_fp8_linear"]["evidence"] == "0 matches: nothing of this kind in the model"
    assert not set(pruned) & set(s["plan"]["knobs"][i]["name"] for i in range(len(s["plan"]["knobs"])))
    assert {d["name"] for d in s["plan"]["no_effect"]} == set(pruned)
    for step in s["trail"]:
        if step["phase"] == "search":
            assert not set(pruned) & set(step["on"] or [])
            assert not any(f"transforms.{n}.enabled: False -> True" in d for n in pruned for d in step["config_diff"])
    report = (Path(s["_dir"]) / "report.md").read_text()
    assert "No effect on this model, not searched" in report and "fuse_fp8_linear (quant_fusion)" in report
    rows = {r["key"]: r["status"] for r in s["config_accounting"]["rows"]}
    assert rows["transforms.optimize_rope.enabled"] == "APPLIED" and rows["transforms.fuse_fp8_linear.enabled"] == "SKIPPED"
    assert rows["compile_backend"] == "APPLIED" and rows["transforms.optimize_rope.fault"] == "APPLIED"
    assert "## Did it apply?" in report
    # the demo bisect's report shows the first divergence inside its culprit (Phase 4), with the plot
    loc = s["localization"]
    assert loc["candidate"] == "minimal + optimize_rope" and loc["control"].startswith("the minimal config")
    assert "## Phase 4 - first divergence inside the culprit" in report and "](localization.png)" in report
    assert "first divergence: model.layers.0.self_attn (layer 0, attention)" in report
    assert (Path(s["_dir"]) / "localization.png").stat().st_size > 10_000
    assert s["next_steps"][0].startswith("Layer-wise: minimal + optimize_rope first leaves the noise band at "
                                         "model.layers.0.self_attn (layer 0)")
    assert s["run"]["localize"]["cached"] is False


def test_localization_reruns_from_the_cache_and_can_be_turned_off(tmp_path, store):
    """The demo bisect again on the same store (test_no_op_knobs_are_pruned_and_never_switched_on ran it): no
    evaluation, the localization from its cache, the same result; --no-localize skips it."""
    from pathlib import Path

    from harness.paths import CONFIGS

    demo = (CONFIGS / "demo" / "ad_demo.yaml").read_text()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = bisect(tmp_path / "a", store, demo)
    again = bisect(tmp_path / "b", store, demo)
    assert again["run"]["runner"]["evaluations_run"] == 0 and again["run"]["localize"]["cached"] is True
    assert again["localization"] == first["localization"] and (Path(again["_dir"]) / "localization.png").is_file()
    off = bisect(tmp_path, store, demo, "--no-localize")
    assert off["outcome"] == "culprit" and off["localization"] == {"ran": False, "note": "turned off (--no-localize)"}
    assert not (Path(off["_dir"]) / "localization.png").exists()
    assert not any(step.startswith("Layer-wise") for step in off["next_steps"])
