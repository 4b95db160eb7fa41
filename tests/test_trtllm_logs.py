"""AD per-transform log lines (both eras) -> records with a status; warnings only for what is suspicious; output
capture incl. child processes. Line shapes follow NVIDIA/TensorRT-LLM tensorrt_llm/_torch/auto_deploy/transform/
interface.py (@01f08360, @c57d2c55, newest stored) and tensorrt_llm/logger.py (prefix, [RANK r], severity)."""
from __future__ import annotations

import logging
import subprocess
import sys

from harness.backends.trtllm import capture, logs

P = "[11/24/2026-10:00:00] [TRT-LLM AUTO-DEPLOY] [RANK 0] [I] "
W = "[11/24/2026-10:00:00] [TRT-LLM AUTO-DEPLOY] [RANK 0] [W] "
CURRENT = f"""\
{P}[stage=factory, transform=build_model] [APPLY] applying transform...
{P}[stage=factory, transform=build_model] [SUMMARY] matches=1 | time: 2.500s (pre=0.000s, apply=2.500s, post=0.000s)
[11/24/2026-10:00:01] [TRT-LLM AUTO-DEPLOY] [RANK 1] [I] [stage=factory, transform=build_model] [SUMMARY] matches=1 | time: 2.6s (pre=0s, apply=2.6s, post=0s)
{P}[stage=sharding, transform=detect_sharding] [PRE-CLEANUP] graph canonicalization + shape_prop
{P}[stage=sharding, transform=detect_sharding] [APPLY] applying transform...
{P}[stage=sharding, transform=detect_sharding] [APPLY] Skipping sharding for single device
{P}[stage=sharding, transform=detect_sharding] [POST-CLEANUP] skipped (graph already clean)
{P}[stage=sharding, transform=detect_sharding] [SUMMARY] skipped | time: 0.010s (pre=0.001s, apply=0.008s, post=0.001s)
some unrelated line
{P}[stage=post_load_fusion, transform=fuse_fp8_linear] [SUMMARY] skipped | time: 0.002s (pre=0.000s, apply=0.002s, post=0.000s)
{P}[stage=post_load_fusion, transform=fuse_moe] [SUMMARY] matches=0 | time: 0.003s (pre=0.000s, apply=0.003s, post=0.000s)
{W}[stage=post_load_fusion, transform=fuse_l2norm] [APPLY] Transform fuse_l2norm failed: shapes do not match
{P}[stage=post_load_fusion, transform=fuse_l2norm] [SUMMARY] skipped | time: 0.004s (pre=0.000s, apply=0.004s, post=0.000s)
{P}[stage=post_load_fusion, transform=fuse_gemms] [SUMMARY] disabled
\x1b[32m{P}[stage=post_load_fusion, transform=fuse_rmsnorm] [SUMMARY] matches=65 | time: 0.3s (pre=0s, apply=0.3s, post=0s)\x1b[0m
{P}[stage=cache_init, transform=insert_cached_attention] [PRE-CLEANUP] graph canonicalization
{P}[stage=cache_init, transform=insert_cached_attention] [APPLY] applying transform...
"""

LEGACY = """\
[TRT-LLM AUTO-DEPLOY] [I] [stage=sharding, transform=detect_sharding] Skipping sharding for single device
[TRT-LLM AUTO-DEPLOY] [I] [stage=sharding, transform=detect_sharding] running graph cleanup (with shape_prop)
[TRT-LLM AUTO-DEPLOY] [I] [stage=sharding, transform=detect_sharding] enabled=True, skipped=True, is_clean=True, has_valid_shapes=True
[TRT-LLM AUTO-DEPLOY] [I] [stage=sharding, transform=detect_sharding] elapsed time: total=0.010s, pre_cleanup=0.000s, apply=0.010s, post_cleanup=0.000s
[TRT-LLM AUTO-DEPLOY] [W] [stage=post_load_fusion, transform=fuse_moe] Transform fuse_moe failed: shapes
[TRT-LLM AUTO-DEPLOY] [I] [stage=post_load_fusion, transform=fuse_moe] enabled=True, skipped=True, is_clean=False, has_valid_shapes=False
[TRT-LLM AUTO-DEPLOY] [I] [stage=post_load_fusion, transform=fuse_gemms] enabled=False, skipped=True, is_clean=False, has_valid_shapes=False
[TRT-LLM] [MPI_Rank 0] [I] [stage=compile, transform=compile_model] enabled=True, num_matches=1, is_clean=True, has_valid_shapes=True
"""


def _by(text):
    return {r["transform"]: r for r in logs.parse_transform_lines(text)}


def test_current_format_statuses_and_evidence():
    recs = logs.parse_transform_lines(CURRENT)
    assert [r["transform"] for r in recs] == ["build_model", "detect_sharding", "fuse_fp8_linear", "fuse_moe",
                                              "fuse_l2norm", "fuse_gemms", "fuse_rmsnorm", "insert_cached_attention"]
    by = {r["transform"]: r for r in recs}
    assert {r["format"] for r in recs if r["format"]} == {"summary"}
    assert by["build_model"]["status"] == "applied" and by["build_model"]["time_s"] == 2.5  # rank 0 only
    assert by["detect_sharding"]["status"] == "skipped" and by["detect_sharding"]["skipped"] is True
    assert by["detect_sharding"]["messages"] == ["Skipping sharding for single device"]  # chatter dropped
    assert by["fuse_fp8_linear"]["status"] == "skipped"
    assert by["fuse_moe"]["status"] == "skipped" and by["fuse_moe"]["num_matches"] == 0
    assert by["fuse_l2norm"]["status"] == "failed"  # an error before the skip is a failure, not "nothing to do"
    assert "Transform fuse_l2norm failed: shapes do not match" in by["fuse_l2norm"]["evidence"]
    assert by["fuse_gemms"]["status"] == "disabled" and by["fuse_gemms"]["enabled"] is False
    assert by["fuse_rmsnorm"]["num_matches"] == 65 and "\x1b" not in by["fuse_rmsnorm"]["evidence"]
    assert by["insert_cached_attention"]["status"] == "failed"  # lines but no [SUMMARY]: the build stopped there
    assert "no result line" in by["insert_cached_attention"]["evidence"]
    assert "[SUMMARY] matches=65" in by["fuse_rmsnorm"]["evidence"]
    assert logs.describe(by["fuse_fp8_linear"]) == "fuse_fp8_linear [post_load_fusion]: skipped - nothing to do (reported skipped)"
    assert logs.describe(by["fuse_moe"]) == "fuse_moe [post_load_fusion]: skipped - nothing to do (0 matches)"
    assert logs.summarize(recs)["counts"] == {"applied": 2, "skipped": 3, "disabled": 1, "failed": 2, "not_seen": 0}
    assert logs.parse_transform_lines("no AD here\n") == []


def test_legacy_format_skip_is_nothing_to_do_unless_an_error_came_first():
    by = _by(LEGACY)
    assert {r["format"] for r in by.values()} == {"legacy"}
    assert by["detect_sharding"]["status"] == "skipped" and by["detect_sharding"]["time_s"] == 0.01
    assert by["detect_sharding"]["messages"] == ["Skipping sharding for single device"]
    assert by["fuse_moe"]["status"] == "failed" and "failed: shapes" in by["fuse_moe"]["evidence"]
    assert by["fuse_gemms"]["status"] == "disabled"
    assert by["compile_model"]["status"] == "applied"  # old logger prefix "[TRT-LLM] [MPI_Rank r]"


def test_both_eras_in_one_log_and_bare_lines():
    mixed = CURRENT.splitlines()[1] + "\n" + LEGACY.splitlines()[-1] + "\n"
    mixed += "[stage=compile, transform=fuse_causal_conv_activation] [SUMMARY] matches=0 | time: 0.1s\n"
    by = _by(mixed)
    assert by["build_model"]["format"] == "summary" and by["compile_model"]["format"] == "legacy"
    assert by["fuse_causal_conv_activation"]["status"] == "skipped"  # no prefix at all still parses


def test_not_seen_records_only_when_lines_were_captured():
    resolved = {"transforms": {"build_model": {"stage": "factory"}, "fuse_silu_mul": {"stage": "post_load_fusion"}}}
    recs = logs.with_not_seen(logs.parse_transform_lines(CURRENT), resolved)
    assert recs[-1] == {**recs[-1], "transform": "fuse_silu_mul", "status": "not_seen", "num_matches": None}
    assert logs.with_not_seen([], resolved) == []


def test_warnings_only_for_what_is_suspicious():
    resolved = {"compile_backend": "torch-simple", "world_size": 1, "transforms": {
        "build_model": {"stage": "factory"}, "detect_sharding": {"stage": "sharding"},
        "fuse_fp8_linear": {"stage": "post_load_fusion"}, "fuse_moe": {"stage": "post_load_fusion"},
        "fuse_l2norm": {"stage": "post_load_fusion"},
        "fuse_gemms": {"stage": "post_load_fusion", "enabled": True},  # requested on, ran disabled
        "fuse_rmsnorm": {"stage": "post_load_fusion", "enabled": False},  # requested off, ran
        "fuse_silu_mul": {"stage": "post_load_fusion"},  # requested, never logged
        "compile_model": {"stage": "compile", "cuda_graph_batch_sizes": [1, 2]}}}
    requested = {"transforms": {"fuse_gemms": {"enabled": True}, "fuse_silu_mul": {"enabled": True},
                                "fuse_fp8_linear": {"enabled": True}, "compile_model": {"cuda_graph_batch_sizes": [1, 2]}}}
    recs = logs.with_not_seen(logs.parse_transform_lines(CURRENT), resolved)
    engine = {"compile_backend": "torch-cudagraph", "world_size": 1,
              "transforms": {"compile_model": {"cuda_graph_batch_sizes": [1, 2, 4, 8]}}}
    w = "\n".join(logs.not_applied_warnings(recs, resolved, requested, engine))
    assert "fuse_l2norm: failed: " in w and "shapes do not match" in w
    assert "insert_cached_attention: failed" in w
    assert "fuse_gemms: requested enabled but AD ran it disabled" in w
    assert "fuse_rmsnorm: requested disabled but AD ran it (applied)" in w
    assert "fuse_silu_mul: set in the config (enabled) but AD logged no line" in w
    assert "compile_backend: requested 'torch-simple' but AD resolved 'torch-cudagraph'" in w
    assert "transforms.compile_model.cuda_graph_batch_sizes: requested [1, 2] but AD's validated config has" in w
    # nothing to do is not suspicious: no warning for the skipped / 0-match transforms, not even when requested
    assert "fuse_fp8_linear" not in w and "detect_sharding" not in w and "fuse_moe" not in w
    assert "skip_on_error" not in w
    none = logs.not_applied_warnings([], resolved, requested, {})
    assert none == ["no per-transform log lines were captured (AUTO_DEPLOY_LOG_LEVEL above info?); cannot confirm "
                    "which transforms ran"]


def test_evidence_lines_for_config_keys():
    patterns = {"compile_backend": {"confirm": {"torch-cudagraph": ["Capturing graph for batch size:"]}},
                "max_batch_size": {"fail": ["Capping max_batch_size"]}}
    text = (f"{P}[stage=compile, transform=compile_model] [APPLY] Capturing graph for batch size: 4\n"
            f"{W}max_batch_size (256) exceeds max_num_tokens (128). Capping max_batch_size to 128.\n")
    ev = logs.find_evidence(text, patterns)
    assert ev["compile_backend"]["confirm"]["torch-cudagraph"][0].endswith("Capturing graph for batch size: 4")
    assert "Capping max_batch_size to 128" in ev["max_batch_size"]["fail"][0]


def test_tee_captures_children_and_python_loggers(capfd):
    tee = capture.OutputTee().start()
    try:
        subprocess.run([sys.executable, "-c", "import sys; print('[TRT-LLM AUTO-DEPLOY] [RANK 0] [I] [stage=export, "
                        "transform=export_to_gm] [SUMMARY] matches=1 | time: 0.1s (pre=0s, apply=0.1s, post=0s)'); "
                        "print('[TRT-LLM] [I] [stage=compile, transform=compile_model] enabled=True, num_matches=1, "
                        "is_clean=True, has_valid_shapes=True', file=sys.stderr, flush=True)"],
                       check=True)
        logging.getLogger("TRT-LLM AUTO-DEPLOY").warning("[stage=compile, transform=compile_model] enabled=True, "
                                                         "num_matches=1, is_clean=True, has_valid_shapes=True")
        recs = tee.records()
    finally:
        tee.stop()
    # stdout and stderr (older loggers wrote there); the two pipes interleave in any order
    assert sorted(r["transform"] for r in recs) == ["compile_model", "export_to_gm"]
    seen = capfd.readouterr()
    assert "transform=export_to_gm" in seen.out and "transform=compile_model" in seen.err  # passed through, per stream
    assert [r["transform"] for r in logs.parse_transform_lines("\n".join(tee.log_messages))] == ["compile_model"]
