"""Shared by the bisect tests: run `bisect` on a config with the crash plugin and read its summary."""
import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.paths import DEMO_MMLU, DEMO_MODEL

CRASH_PLUGIN = Path(__file__).resolve().parent / "plugins" / "crash_plugin.py"
needs_demo = pytest.mark.skipif(not (DEMO_MODEL / "config.json").is_file() or not DEMO_MMLU.is_dir(),
                                reason="demo model/data not built (scripts/build_demo.py)")


def run_bisect(tmp_path, config, *extra, store=None):
    cfg = tmp_path / "ad.yaml"
    cfg.write_text(config)
    out = tmp_path / "reports"
    rc = main(["bisect", "--config", str(cfg), "--plugin", str(CRASH_PLUGIN), "--samples", "12", "--quiet",
               "--cache-dir", str(store or tmp_path / "cache"), "--out", str(out), *_with_min_effect(extra)])
    assert rc == 0  # the bisect completed, whatever the verdict
    (path,) = list(out.glob("bisect-*/summary.json"))
    return json.loads(path.read_text()), path.parent


FP8_MODEL = DEMO_MODEL.parent / "demo_model_fp8"
# The planted faults these tests bisect cost 8-40 points. A minimum effect of 3 points keeps their search
# logic under test while an equivalence ("same") needs a few hundred pairs instead of the ~600 that the
# default of 1 point needs (docs/method.md, "Statistics"); a test that passes --min-effect overrides it.
TEST_MIN_EFFECT = ["--min-effect", "3"]


def _with_min_effect(extra) -> list[str]:
    return list(extra) if "--min-effect" in extra else TEST_MIN_EFFECT + list(extra)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One evaluation store per test module, so the reference run is evaluated once."""
    return tmp_path_factory.mktemp("bisect-store")


def bisect_inprocess(tmp_path, store, config: str, *extra, samples: str = "24") -> dict:
    """`bisect` with in-process evaluations on a small sample; the summary, with its directory."""
    cfg = tmp_path / "ad.yaml"
    cfg.write_text(config)
    out = tmp_path / "reports"
    rc = main(["bisect", "--config", str(cfg), "--samples", samples, "--executor", "inprocess", "--quiet",
               "--cache-dir", str(store), "--out", str(out), *_with_min_effect(extra)])
    assert rc == 0
    (summary,) = list(out.glob("bisect-*/summary.json"))
    s = json.loads(summary.read_text())
    s["_dir"] = str(summary.parent)
    return s
