"""The issue's "done when": a full `bisect --backend-ref trtllm-pt --backend trtllm-ad` on CPU, through the real
adapter code and worker processes, against the fake tensorrt_llm with a planted fault, names the faulty transform."""
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


@pytest.mark.slow
@pytest.mark.skipif(not (DEMO_MODEL / "config.json").is_file() or not DEMO_MMLU.is_dir(),
                    reason="demo model/data not built (scripts/build_demo.py)")
def test_bisect_trtllm_pt_vs_ad_names_the_faulty_transform(tmp_path):
    site = make_fake(tmp_path, era="merged", fault={"transform": "fuse_rmsnorm", "kind": "skip_layer"})
    cfg = tmp_path / "ad.yaml"
    cfg.write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AD_", "FAKE_TRTLLM", "HARNESS_AD_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO_ROOT)])
    env["HF_HUB_OFFLINE"] = "1"
    dumps = tmp_path / "dumps"
    cmd = [sys.executable, "-m", "harness", "bisect", "--backend-ref", "trtllm-pt", "--backend", "trtllm-ad",
           "--model", str(DEMO_MODEL), "--config", str(cfg), "--samples", "40", "--out", str(tmp_path / "reports"),
           "--cache-dir", str(tmp_path / "cache"), "--dump-graphs", str(dumps), "--quiet"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(next((tmp_path / "reports").glob("bisect-*/summary.json")).read_text())

    assert summary["verdict"] == "regressed", summary["headline"]
    assert [c["knobs"] for c in summary["culprits"]] == [["fuse_rmsnorm"]]
    assert summary["culprits"][0]["confirmed"] is True
    assert "fuse_rmsnorm" in summary["headline"]
    # the engines really were the fake TensorRT-LLM, driven through the adapters
    assert "1.2.0rc2" in json.dumps(summary["environment"])
    effects = summary["knob_effects"]["fuse_rmsnorm"]
    assert effects["reported_enabled"] is True and effects["num_matches"] > 0
    # --dump-graphs: one fresh subdirectory per AD evaluation, holding AD's per-transform dumps
    subdirs = [d for d in dumps.iterdir() if d.is_dir()]
    assert subdirs
    for d in subdirs:
        names = sorted(f.name for f in d.iterdir())
        assert names[0].startswith("001_factory_build_model") and names[-1].endswith("_compile_compile_model.txt")
