"""The shipped nightly suite (configs/nightly.yaml) on the real AD emulator and hf reference: the
clean config passes, the planted regression fails by the TRT-LLM gate and the paired verdict."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.paths import CONFIGS, DEMO_MODEL, REPO_ROOT


def test_shipped_nightly_suite_catches_the_planted_regression(tmp_path):
    if not (DEMO_MODEL / "config.json").is_file():
        pytest.skip("demo model not built")
    r = subprocess.run([sys.executable, "-m", "harness", "regress", "--suite", str(CONFIGS / "nightly.yaml"),
                        "--samples", "48", "--out", str(tmp_path / "out"), "--history", str(tmp_path / "h.db"),
                        "--cache-dir", str(tmp_path / "cache"), "--quiet"],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    jobs = {j["job"]["config_name"]: j for j in json.loads((tmp_path / "out" / "summary.json").read_text())["jobs"]}
    assert jobs["ad-default"]["status"] == "passed" and jobs["ad-default"]["paired"]["verdict"] in ("same", "inconclusive")
    bad = jobs["ad-planted-eps"]
    assert bad["status"] == "failed" and bad["paired"]["verdict"] == "regressed"
    assert bad["score"] < bad["threshold"] <= jobs["ad-default"]["score"]
    assert bad["reference"]["source"].endswith("configs/references/mmlu.yaml")
    assert (tmp_path / "out" / "junit.xml").is_file() and (tmp_path / "h.db").is_file()
