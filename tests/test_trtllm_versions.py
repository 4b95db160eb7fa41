"""The version matrix: knob discovery, renames, log parsing, did-it-apply and pruning on three AutoDeploy versions
written from the real source (tests/fixtures/trtllm_versions/README.md names the files and commits)."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends.accounting import account_config
from harness.backends.trtllm import logs
from harness.backends.trtllm import version as tv
from harness.backends.trtllm.ad import plan_ad
from harness.bisect.plan import build_plan
from harness.config import Catalogue, load_yaml
from harness.paths import TRTLLM_LOG_PATTERNS

BASE = Path(__file__).resolve().parent / "fixtures" / "trtllm_versions"
VERSIONS = ["adc_3e906a0e", "merged_01e5db06", "newest_16e9bea0"]

# what each version's source says (see the fixture README)
EXPECT = {
    "adc_3e906a0e": {
        "era": "autodeploy_config", "format": "legacy", "mha": ["flashinfer", "torch", "triton"],
        "has": {"free_mem_ratio", "cuda_graph_batch_sizes", "kv_cache_dtype", "attn_page_size", "yaml_extra"},
        "lacks": {"cuda_graph_config", "speculative_model_kwargs"},
        "knobs": ["eliminate_redundant_transposes", "optimize_rope", "fuse_fp8_linear", "fuse_nvfp4_linear", "fuse_moe",
                  "fuse_fp8_moe", "fuse_rmsnorm", "fuse_gated_rmsnorm", "compile_backend"],
        "kept": ["eliminate_redundant_transposes", "optimize_rope", "fuse_rmsnorm", "compile_backend"],
        "compile": "torch-compile", "attn": "flashinfer",
    },
    "merged_01e5db06": {
        "era": "merged", "format": "legacy", "mha": ["trtllm", "flashinfer", "torch", "triton_paged"],
        "has": {"cuda_graph_config", "kv_cache_config", "draft_checkpoint_loader", "build_config", "yaml_default"},
        "lacks": {"free_mem_ratio", "cuda_graph_batch_sizes"},
        "knobs": ["eliminate_redundant_transposes", "optimize_rope", "fuse_fp8_linear", "fuse_nvfp4_linear",
                  "fuse_nvfp4_swiglu", "fuse_finegrained_fp8_linear", "fuse_moe", "fuse_fp8_moe",
                  "fuse_finegrained_fp8_moe", "fuse_rmsnorm", "fuse_l2norm", "fuse_add_rms_norm",
                  "fuse_causal_conv_activation", "compile_backend"],
        "kept": ["eliminate_redundant_transposes", "optimize_rope", "fuse_rmsnorm", "fuse_add_rms_norm", "compile_backend"],
        "compile": "torch-compile", "attn": "flashinfer",
    },
    "newest_16e9bea0": {
        "era": "merged", "format": "summary", "mha": ["trtllm", "flashinfer", "torch", "triton_paged"],
        "has": {"cuda_graph_config", "speculative_model_kwargs", "mode"},
        "lacks": {"free_mem_ratio", "build_config", "draft_checkpoint_loader"},
        "knobs": None,  # 23, checked by count and membership below
        "kept": ["eliminate_redundant_transposes", "match_swiglu_pattern", "fuse_rmsnorm", "fuse_silu_mul",
                 "optimize_rope", "compile_backend"],
        "compile": "torch-cudagraph", "attn": "trtllm",
    },
}


def _files(v):
    pkg = BASE / v / "tensorrt_llm"
    return pkg, Catalogue.from_yaml(pkg / "_torch" / "auto_deploy" / "config" / "default.yaml")


def _records(v):
    return logs.parse_transform_lines((BASE / v / "build_log.txt").read_text())


@pytest.mark.parametrize("v", VERSIONS)
def test_knob_discovery(v):
    pkg, cat = _files(v)
    e = EXPECT[v]
    fields = tv.llm_args_fields(pkg)
    assert tv.api_era(fields) == e["era"]
    assert e["has"] <= set(fields) and not (e["lacks"] & set(fields))
    backends = tv.registered_backends(pkg)
    assert tv.mha_attention_backends(backends["attention"], cat.default) == e["mha"]
    assert backends["compile"] == ["torch-simple", "torch-compile", "torch-cudagraph", "torch-opt"]
    plan = build_plan(cat, {})
    if e["knobs"] is not None:
        assert plan.knob_names == e["knobs"]
    else:
        assert len(plan.knobs) == 23 and {"fuse_nvfp4_moe", "fuse_silu_mul", "match_swiglu_pattern"} <= set(plan.knob_names)
    # weight loading is never a knob, whatever its stage
    assert not {"load_weights", "move_inputs_to_device", "strip_sharding_hints"} & set(plan.knob_names)
    from harness.config import resolve

    full = resolve(cat, {})
    assert full["compile_backend"] == e["compile"] and full["attn_backend"] == e["attn"]


@pytest.mark.parametrize("v", VERSIONS)
def test_renamed_fields_map_to_the_installed_version(v):
    pkg, cat = _files(v)
    fields = tv.llm_args_fields(pkg)
    if EXPECT[v]["era"] == "autodeploy_config":
        cfg, notes = tv.map_renamed_fields({"kv_cache_config": {"free_gpu_memory_fraction": 0.8},
                                            "cuda_graph_config": {"batch_sizes": [1, 2, 4]}}, fields, cat.default)
        assert cfg["free_mem_ratio"] == 0.8 and cfg["cuda_graph_batch_sizes"] == [1, 2, 4]
        assert "cuda_graph_config" not in cfg
    else:
        cfg, notes = tv.map_renamed_fields({"free_mem_ratio": 0.8, "cuda_graph_batch_sizes": [1, 2, 4]}, fields, cat.default)
        assert cfg["kv_cache_config"] == {"free_gpu_memory_fraction": 0.8}
        assert cfg["cuda_graph_config"] == {"batch_sizes": [1, 2, 4]}
    assert notes
    # a compile_model.cuda_graph_batch_sizes the user sets survives AD's cuda_graph_config sync (merged era only)
    user = {"transforms": {"compile_model": {"cuda_graph_batch_sizes": [1, 8]}}}
    plan = plan_ad("m", user, cat.default, valid_fields=fields)
    if EXPECT[v]["era"] == "merged":
        assert plan.yaml_extra_content["cuda_graph_config"] == {"batch_sizes": [1, 8]}
        assert any("cuda_graph_config.batch_sizes" in n for n in plan.notes)
    else:
        assert "cuda_graph_config" not in plan.yaml_extra_content


@pytest.mark.parametrize("v", VERSIONS)
def test_log_parsing(v):
    recs = _records(v)
    by = {r["transform"]: r for r in recs}
    _, cat = _files(v)
    assert [r["transform"] for r in recs] == cat.ordered(cat.names())  # every transform, in stage order
    assert {r["format"] for r in recs} == {EXPECT[v]["format"]}
    assert by["fuse_rmsnorm"]["status"] == "applied" and by["fuse_rmsnorm"]["num_matches"] == 65
    assert by["fuse_fp8_linear"]["status"] == "skipped" and by["fuse_fp8_linear"]["skipped"] is True
    assert by["fuse_moe"]["status"] == "skipped" and by["fuse_moe"]["skipped"] is False
    assert by["fuse_moe"]["num_matches"] == 0
    assert by["fuse_gemms"]["status"] == "disabled"
    assert by["detect_sharding"]["status"] == "skipped"
    if v != "adc_3e906a0e":  # messages inside a transform are tagged from @c57d2c55 on
        assert "Skipping sharding for single device" in by["detect_sharding"]["messages"]
    assert all(r["status"] != "failed" for r in recs)


@pytest.mark.parametrize("v", VERSIONS)
def test_did_it_apply(v):
    text = (BASE / v / "build_log.txt").read_text()
    info = {"transforms": _records(v), "settings": {"compile_backend": EXPECT[v]["compile"], "world_size": 1},
            "log_evidence": logs.find_evidence(text, load_yaml(TRTLLM_LOG_PATTERNS, "patterns"))}
    user = {"compile_backend": EXPECT[v]["compile"], "world_size": 1, "max_seq_len": 4096,
            "transforms": {"fuse_rmsnorm": {"enabled": True}, "fuse_fp8_linear": {}, "fuse_gemms": {"enabled": False},
                           "fuse_moe": {"enabled": False}}}
    rows = {r["key"]: r for r in account_config(user, info)}
    assert list(rows) == ["compile_backend", "world_size", "max_seq_len", "transforms.fuse_rmsnorm.enabled",
                          "transforms.fuse_fp8_linear.enabled", "transforms.fuse_gemms.enabled",
                          "transforms.fuse_moe.enabled"]
    assert rows["transforms.fuse_rmsnorm.enabled"]["status"] == "APPLIED"
    assert "transform=fuse_rmsnorm" in rows["transforms.fuse_rmsnorm.enabled"]["evidence"]
    assert rows["transforms.fuse_fp8_linear.enabled"]["status"] == "SKIPPED"
    assert rows["transforms.fuse_gemms.enabled"]["status"] == "DISABLED"
    assert rows["transforms.fuse_moe.enabled"]["status"] == "FAILED"  # requested off, the log shows it ran
    assert rows["max_seq_len"]["status"] == "UNKNOWN"
    assert rows["compile_backend"]["status"] == "APPLIED"
    if v == "newest_16e9bea0":  # torch-cudagraph's own log line is the evidence
        assert "transform=compile_model] [APPLY] Warm up with max_batch_size=" in rows["compile_backend"]["evidence"]


@pytest.mark.parametrize("v", VERSIONS)
def test_pruning_keeps_only_knobs_that_did_something(v):
    _, cat = _files(v)
    plan = build_plan(cat, {})
    before = plan.worst_case
    pruned = plan.prune_no_effect(_records(v))
    assert plan.knob_names == EXPECT[v]["kept"]
    assert {d["name"] for d in pruned} | set(plan.knob_names) == set(build_plan(cat, {}).knob_names)
    assert plan.worst_case < before
    assert all(d["evidence"] for d in pruned)
    assert "no effect on this model" in plan.render()


def test_weight_loading_is_kept_in_any_stage_and_export_onnx_is_a_stage():
    """knob_categories.yaml: load_weights / move_inputs_to_device / strip_sharding_hints are stage weight_load,
    sync_tied_weights is post_load_fusion (default.yaml@fa19b8ca): all keep. export_onnx is a stage of the newest
    Stages enum, between visualize and compile."""
    from harness.config.catalogue import STAGES

    cat = Catalogue({"transforms": {"sync_tied_weights": {"stage": "post_load_fusion"},
                                    "load_weights": {"stage": "weight_load"},
                                    "export_to_onnx": {"stage": "export_onnx"},
                                    "fuse_rmsnorm": {"stage": "post_load_fusion"}}})
    assert cat.category_of("sync_tied_weights") == "keep" and cat.category_of("load_weights") == "keep"
    assert cat.category_of("fuse_rmsnorm") == "fusion"
    assert STAGES.index("cache_init") < STAGES.index("visualize") < STAGES.index("export_onnx") < STAGES.index("compile")
    assert cat.ordered(["fuse_rmsnorm", "export_to_onnx", "load_weights"]) == ["load_weights", "fuse_rmsnorm",
                                                                              "export_to_onnx"]


def test_attn_backend_is_a_knob_only_when_the_config_changes_it():
    _, cat = _files("newest_16e9bea0")
    assert "attn_backend" not in build_plan(cat, {}).knob_names
    plan = build_plan(cat, {"attn_backend": "flashinfer"})
    knob = plan.knob("attn_backend")
    assert (knob.category, knob.full, knob.minimal) == ("attention", "flashinfer", "trtllm")
    from harness.config import resolve

    minimal = resolve(cat, plan.config({"attn_backend": "flashinfer"}, ()))
    assert minimal["transforms"]["insert_cached_attention"]["backend"] == "trtllm"
