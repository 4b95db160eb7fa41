"""Acceptance runs: full `bisect --backend-ref trtllm-pt --backend trtllm-ad` runs on CPU, through the real
adapter code and worker processes, against the fake tensorrt_llm (current AD log format by default):
a faulty transform is named, the report shows per-transform matches, transforms the full run reported skipped
are never switched on in a search probe; a fault in an attention backend's kernel is found by the core-path
ladder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trtllm_fake import make_fake  # noqa: E402

from harness.paths import DEMO_MMLU, DEMO_MODEL, REPO_ROOT  # noqa: E402

CONFIG = """\
# an AD overlay: three fusions on (one of them faulty in the fake engine), the others off
compile_backend: torch-simple
transforms:
  fuse_fp8_linear: {enabled: false}
  fuse_moe: {enabled: false}
  fuse_silu_mul: {enabled: false}
"""

needs_demo = pytest.mark.skipif(not (DEMO_MODEL / "config.json").is_file() or not DEMO_MMLU.is_dir(),
                                reason="demo model/data not built (scripts/build_demo.py)")


def _bisect(tmp_path, site, config: str, *extra) -> tuple[dict, Path]:
    cfg = tmp_path / "ad.yaml"
    cfg.write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AD_", "FAKE_TRTLLM", "HARNESS_AD_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO_ROOT)])
    env["HF_HUB_OFFLINE"] = "1"
    cmd = [sys.executable, "-m", "harness", "bisect", "--backend-ref", "trtllm-pt", "--backend", "trtllm-ad",
           "--model", str(DEMO_MODEL), "--config", str(cfg), "--samples", "40", "--out", str(tmp_path / "reports"),
           "--cache-dir", str(tmp_path / "cache"), "--quiet", *extra]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    path = next((tmp_path / "reports").glob("bisect-*/summary.json"))
    return json.loads(path.read_text()), path.parent


@pytest.mark.slow
@needs_demo
def test_bisect_trtllm_pt_vs_ad_names_the_faulty_transform(tmp_path):
    site = make_fake(tmp_path, era="merged", fault={"transform": "fuse_rmsnorm", "kind": "skip_layer"})
    dumps = tmp_path / "dumps"
    summary, run_dir = _bisect(tmp_path, site, CONFIG, "--dump-graphs", str(dumps))

    assert summary["verdict"] == "regressed", summary["headline"]
    assert [c["knobs"] for c in summary["culprits"]] == [["fuse_rmsnorm"]]
    assert summary["culprits"][0]["confirmed"] is True
    assert "fuse_rmsnorm" in summary["headline"]
    # the engines really were the fake TensorRT-LLM, driven through the adapters, logging the current format
    assert "1.2.0rc2" in json.dumps(summary["environment"])
    effects = summary["knob_effects"]["fuse_rmsnorm"]
    assert effects["status"] == "applied" and effects["num_matches"] > 0
    assert "[SUMMARY] matches=" in effects["evidence"]
    # transforms the full run reported skipped (the NVFP4 / finegrained FP8 fusions on an unquantized model) are
    # not searched, and no search probe switches them on
    pruned = {d["name"] for d in summary["phases"]["prune"]["no_effect"]}
    assert {"fuse_nvfp4_linear", "fuse_finegrained_fp8_linear"} <= pruned
    assert not pruned & {k["name"] for k in summary["plan"]["knobs"]}
    for step in summary["trail"]:
        if step["phase"] == "search":
            assert not pruned & set(step["on"] or []), step
            assert not [d for d in step["config_diff"] if any(f"transforms.{n}.enabled: False -> True" in d for n in pruned)]
    # the report shows the per-transform matches and accounts for every key of --config
    report = (run_dir / "report.md").read_text()
    assert "fuse_rmsnorm: requested on, applied (2 matches)" in report
    assert "No effect on this model, not searched" in report
    rows = {r["key"]: r["status"] for r in summary["config_accounting"]["rows"]}
    assert rows == {"compile_backend": "APPLIED", "transforms.fuse_fp8_linear.enabled": "DISABLED",
                    "transforms.fuse_moe.enabled": "DISABLED", "transforms.fuse_silu_mul.enabled": "DISABLED"}
    assert "| `transforms.fuse_moe.enabled = False` | DISABLED | [stage=post_load_fusion, transform=fuse_moe] [SUMMARY] disabled |" in report
    # only the suspicious gets a warning: nothing here ("skipped" is not one)
    assert not [w for w in summary["warnings"] if "skip" in w]
    # --dump-graphs: one fresh subdirectory per AD evaluation, holding AD's per-transform dumps
    subdirs = [d for d in dumps.iterdir() if d.is_dir()]
    assert subdirs
    for d in subdirs:
        names = sorted(f.name for f in d.iterdir())
        assert names[0] == "001_export_export_to_gm.txt" and names[-1].endswith("_compile_compile_model.txt")
    # Phase 4: AD's model runs in its own workers (no layer-wise comparison); the full run's dumps are diffed
    # around the culprit transform instead, in summary.json and in the report
    loc = summary["localization"]
    assert loc["available"] is False and "not available" in loc["note"]
    diff = loc["graph"]["diffs"][0]
    assert diff["transform"] == "fuse_rmsnorm" and diff["changed"]
    assert any(op.endswith("_rms_norm.default") for op in diff["added"]) and "aten.rsqrt.default" in diff["removed"]
    assert "## Phase 4 - first divergence inside the culprit" in report and f"- fuse_rmsnorm ({diff['before']}" in report
    # the next steps use it: the rewrite found replaces the advice to go and dump the graphs
    assert summary["next_steps"][0].startswith("Graph dumps: fuse_rmsnorm rewrote")
    assert not any(s.startswith("Dump the graph around the transform") for s in summary["next_steps"])


@pytest.mark.slow
@needs_demo
def test_core_path_ladder_finds_the_faulty_attention_backend(tmp_path):
    site = make_fake(tmp_path, era="merged", fault={"attn_backend": "trtllm", "kind": "attn_scale", "scale": 0.0})
    summary, run_dir = _bisect(tmp_path, site, "compile_backend: torch-simple\n")

    assert summary["outcome"] == "core_path", summary["headline"]
    ladder = summary["phases"]["ladder"]
    assert ladder["recovered"]["axis"] == "attn_backend" and ladder["recovered"]["value"] == "flashinfer"
    assert "the bug is in the trtllm attention backend" in summary["headline"]
    # the rungs offered are the installed version's registered attention kernels (not its MLA / conv caches)
    offered = [r for r in summary["plan"]["ladder"] if r["axis"] == "attn_backend"]
    assert [r["value"] for r in offered] == ["flashinfer", "torch", "triton_paged"]
    assert "## Core-path ladder" in (run_dir / "report.md").read_text()
