"""AD per-transform log lines -> records; 'did it apply?' warnings; output capture incl. child processes."""
from __future__ import annotations

import logging
import subprocess
import sys

from harness.backends.trtllm import logs as logs

# Lines as tensorrt_llm/logger.py + transform/interface.py print them (timestamp, prefix, rank, severity).
LOG = """\
[11/24/2026-10:00:00] [TRT-LLM AUTO-DEPLOY] [RANK 0] [I] [stage=factory, transform=build_model] enabled=True, num_matches=1, is_clean=False, has_valid_shapes=False
[11/24/2026-10:00:00] [TRT-LLM AUTO-DEPLOY] [RANK 0] [I] [stage=factory, transform=build_model] elapsed time: total=2.500s, pre_cleanup=0.000s, apply=2.5s, post_cleanup=0.000s
[11/24/2026-10:00:01] [TRT-LLM AUTO-DEPLOY] [RANK 1] [I] [stage=factory, transform=build_model] enabled=True, num_matches=1, is_clean=False, has_valid_shapes=False
[11/24/2026-10:00:01] [TRT-LLM AUTO-DEPLOY] [RANK 0] [I] [stage=sharding, transform=detect_sharding] Skipping sharding for single device
[11/24/2026-10:00:01] [TRT-LLM AUTO-DEPLOY] [RANK 0] [I] [stage=sharding, transform=detect_sharding] running pre-cleanup (no shape_prop)
[11/24/2026-10:00:01] [TRT-LLM AUTO-DEPLOY] [RANK 0] [I] [stage=sharding, transform=detect_sharding] enabled=True, num_matches=0, is_clean=True, has_valid_shapes=True
some unrelated line
[11/24/2026-10:00:02] [TRT-LLM AUTO-DEPLOY] [RANK 0] [I] [stage=post_load_fusion, transform=fuse_fp8_linear] enabled=True, num_matches=0, is_clean=True, has_valid_shapes=False
[11/24/2026-10:00:02] [TRT-LLM AUTO-DEPLOY] [RANK 0] [W] [stage=post_load_fusion, transform=fuse_moe] Transform fuse_moe failed: shapes
[11/24/2026-10:00:02] [TRT-LLM AUTO-DEPLOY] [RANK 0] [I] [stage=post_load_fusion, transform=fuse_moe] enabled=True, skipped=True, is_clean=False, has_valid_shapes=False
[11/24/2026-10:00:02] [TRT-LLM AUTO-DEPLOY] [RANK 0] [I] [stage=post_load_fusion, transform=fuse_gemms] enabled=False, skipped=True, is_clean=False, has_valid_shapes=False
"""


def test_parse_records():
    recs = logs.parse_transform_lines(LOG)
    assert [r["transform"] for r in recs] == ["build_model", "detect_sharding", "fuse_fp8_linear", "fuse_moe",
                                              "fuse_gemms"]  # rank 0 only
    by = {r["transform"]: r for r in recs}
    for r in recs:
        assert set(r) >= {"stage", "transform", "enabled", "skipped", "num_matches"}
    assert by["build_model"]["num_matches"] == 1 and by["build_model"]["time_s"] == 2.5
    assert by["detect_sharding"]["messages"] == ["Skipping sharding for single device"]
    assert by["fuse_moe"] == {**by["fuse_moe"], "enabled": True, "skipped": True, "num_matches": None}
    assert by["fuse_moe"]["messages"] == ["Transform fuse_moe failed: shapes"]
    assert by["fuse_gemms"]["enabled"] is False and by["fuse_gemms"]["skipped"] is True
    assert logs.describe(by["fuse_fp8_linear"]) == "fuse_fp8_linear [post_load_fusion]: enabled, matched 0 nodes"
    assert logs.summarize(recs)["enabled_zero_matches"] == ["detect_sharding", "fuse_fp8_linear"]
    assert logs.parse_transform_lines("no AD here\n") == []


def test_old_logger_format_without_rank():
    line = "[TRT-LLM] [I] [stage=compile, transform=compile_model] enabled=True, num_matches=1, is_clean=True, has_valid_shapes=True"
    assert logs.parse_transform_lines(line)[0]["stage"] == "compile"


def test_warnings_for_settings_that_did_not_apply():
    recs = logs.parse_transform_lines(LOG)
    config = {"compile_backend": "torch-simple", "world_size": 1, "transforms": {
        "build_model": {"stage": "factory", "enabled": True},
        "fuse_fp8_linear": {"stage": "post_load_fusion", "enabled": True},
        "fuse_moe": {"stage": "post_load_fusion", "enabled": True},
        "fuse_gemms": {"stage": "post_load_fusion", "enabled": True},  # requested on, ran off
        "fuse_rmsnorm": {"stage": "post_load_fusion", "enabled": True},  # no line at all
    }}
    requested = {"transforms": {"fuse_fp8_linear": {"enabled": True}, "fuse_gemms": {"enabled": True}}}
    w = logs.not_applied_warnings(recs, config, requested, {"compile_backend": "torch-cudagraph", "world_size": 1})
    text = "\n".join(w)
    assert "fuse_fp8_linear was enabled but matched 0 nodes" in text
    assert "fuse_gemms: requested enabled but AD ran it disabled" in text
    assert "fuse_moe: enabled but skipped" in text and "failed: shapes" in text
    assert "fuse_rmsnorm: enabled in the config but AD logged no line" in text
    assert "compile_backend: requested 'torch-simple' but AD resolved 'torch-cudagraph'" in text
    assert not any("build_model" in x for x in w)
    none = logs.not_applied_warnings([], config, requested, {})
    assert any("no per-transform log lines were captured" in x for x in none)


def test_tee_captures_children_and_python_loggers(capfd):
    tee = logs.OutputTee().start()
    try:
        subprocess.run([sys.executable, "-c", "print('[TRT-LLM AUTO-DEPLOY] [RANK 0] [I] [stage=export, "
                        "transform=export_to_gm] enabled=True, num_matches=1, is_clean=True, has_valid_shapes=True')"],
                       check=True)
        logging.getLogger("TRT-LLM AUTO-DEPLOY").warning("[stage=compile, transform=compile_model] enabled=True, "
                                                         "num_matches=1, is_clean=True, has_valid_shapes=True")
        recs = tee.records()
    finally:
        tee.stop()
    assert [r["transform"] for r in recs] == ["export_to_gm"]  # the fd capture wins, no duplicates
    assert "transform=export_to_gm" in capfd.readouterr().out  # passed through to the real stdout
    assert [r["transform"] for r in logs.parse_transform_lines("\n".join(tee.log_messages))] == ["compile_model"]
