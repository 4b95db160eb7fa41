"""--reference-protocol: the reference-score check follows accuracy_core.py (stops at EOS), the paired runs AD's
test protocol (end_id=-1), both recorded; the flag switches either way (harness/bisect/protocol.py)."""
from __future__ import annotations

from bisect_helpers import bisect_inprocess, needs_demo, store  # noqa: F401  (a fixture)

pytestmark = needs_demo
CLEAN = "transforms:\n  fuse_rmsnorm: {enabled: true}\n"


def _specs(s):
    return [t for t in s["trail"] if t["phase"] == "0"]


def test_auto_scores_the_reference_with_accuracy_core_and_pairs_with_ad_test(tmp_path, store):
    s = bisect_inprocess(tmp_path, store, CLEAN, "--reference-score", "60", samples="12")
    steps = _specs(s)
    assert [t["purpose"] for t in steps] == ["reference run (hf)", "reference run for the score check "
                                             "(accuracy_core protocol: stops at EOS)"]
    protocols = s["phases"]["0"]["protocols"]
    assert protocols["paired"]["name"] == "ad-test" and protocols["reference_score"]["name"] == "accuracy-core"
    assert "accuracy_core.py@00c11460" in protocols["reference_score"]["source"]
    check = next(c for c in s["phases"]["0"]["checks"] if c["name"] == "reference score")
    assert "reference backend" in check["detail"]
    assert "Sampling protocols (--reference-protocol auto)" in (__import__("pathlib").Path(s["_dir"]) / "report.md").read_text()


def test_ad_test_and_accuracy_core_flags(tmp_path, store):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    s = bisect_inprocess(tmp_path / "a", store, CLEAN, "--reference-score", "60", "--reference-protocol", "ad-test",
                         samples="12")
    assert len(_specs(s)) == 1  # no extra run: the paired reference is scored
    assert s["phases"]["0"]["protocols"]["reference_score"]["name"] == "ad-test"
    s = bisect_inprocess(tmp_path / "b", store, CLEAN, "--reference-protocol", "accuracy-core", samples="12")
    assert s["phases"]["0"]["protocols"]["paired"]["name"] == "accuracy-core"
    assert s["inputs"]["reference_protocol"] == "accuracy-core"


def test_bad_protocol_is_one_line(tmp_path, capsys):
    from harness.cli import main

    rc = main(["bisect", "--reference-protocol", "pt", "--dry-run", "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "--reference-protocol" in err[0] and "auto, ad-test, accuracy-core" in err[0]
