"""`check` on the AD emulator: a clean config is good (0), a planted fault is bad (1), a config whose
plugin transform raises is untestable (125) and triaged as an AD transform failure."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from harness.paths import DEMO_MMLU, DEMO_MODEL, REPO_ROOT


def test_emulator_good_bad_and_crashing_configs(tmp_path):
    """Real emulator runs on the demo model, launched concurrently to keep the file short."""
    if not (DEMO_MODEL / "config.json").is_file():
        pytest.skip("demo model not built")
    bad = tmp_path / "bad.yaml"  # fused RMSNorm with a hardcoded epsilon (configs/emulator/FAULTS.md)
    bad.write_text("transforms:\n  fuse_rmsnorm: {fault: hardcoded_eps, fault_strength: 0.5}\n")
    plugin = tmp_path / "boom.py"  # a plugin transform that raises: the engine never builds
    plugin.write_text(textwrap.dedent("""\
        def boom(model, options, context):
            raise RuntimeError("boom: fused kernel shape mismatch")
        TRANSFORMS = {"boom": boom}
        DEFAULTS = {"boom": {"stage": "post_load_fusion", "enabled": True}}
    """))
    ref = json.loads((DEMO_MODEL / "accuracy.json").read_text())["overall"] * 100  # the demo's measured accuracy
    base = [sys.executable, "-m", "harness", "check", "--backend", "ad-emulator", "--model", str(DEMO_MODEL),
            "--dataset", str(DEMO_MMLU), "--samples", "24", "--reference-score", f"{ref:.2f}", "--json"]
    cases = {"good": [], "bad": ["--config", str(bad)], "crash": ["--plugin", str(plugin)]}
    procs = {k: subprocess.Popen(base + v + ["--cache-dir", str(tmp_path / k)], cwd=REPO_ROOT, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k, v in cases.items()}
    outs = {k: p.communicate(timeout=300) for k, p in procs.items()}
    codes = {k: p.returncode for k, p in procs.items()}
    assert codes == {"good": 0, "bad": 1, "crash": 125}, outs
    crash = json.loads(outs["crash"][0])
    assert crash["triage"]["primary"] == "ad_transform" and "boom" in crash["error"]
    good, badr = json.loads(outs["good"][0]), json.loads(outs["bad"][0])
    assert badr["score"] < badr["threshold"] <= good["score"]
