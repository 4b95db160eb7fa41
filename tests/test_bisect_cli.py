"""bisect's command line: bad inputs -> one clear line and exit 2; --dry-run prints the plan without
evaluating; SIGKILL mid-run then rerun repeats no finished evaluation and writes the same summary."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from harness.cli import main
from harness.paths import DEMO_MMLU, DEMO_MODEL, REPO_ROOT

needs_demo = pytest.mark.skipif(not (DEMO_MODEL / "config.json").is_file() or not DEMO_MMLU.is_dir(),
                                reason="demo model/data not built (scripts/build_demo.py)")


def one_line_error(capsys, argv) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


@needs_demo
def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    cache = ["--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("transforms:\n  fuse_rmsnrom: {enabled: false}\n")
    err = one_line_error(capsys, ["bisect", "--config", str(unknown), *cache])
    assert "fuse_rmsnrom" in err and "fuse_rmsnorm" in err  # names the value and the valid ones

    bad = tmp_path / "bad.yaml"
    bad.write_text("transforms:\n  fuse_rmsnorm:\n    enabled: [false\n")
    err = one_line_error(capsys, ["bisect", "--config", str(bad), *cache])
    assert "bad.yaml" in err and "line" in err

    err = one_line_error(capsys, ["bisect", "--model", str(tmp_path / "no_such_model"), *cache])
    assert "no_such_model" in err

    blocker = tmp_path / "file_not_dir"
    blocker.write_text("x")
    err = one_line_error(capsys, ["bisect", "--out", str(blocker / "reports"), "--cache-dir", str(tmp_path / "c")])
    assert "not writable" in err and "--out" in err

    plan = tmp_path / "plan.yaml"
    plan.write_text("knobs: [fuse_nothing]\n")
    err = one_line_error(capsys, ["bisect", "--ablation", str(plan), *cache])
    assert "fuse_nothing" in err and "optimize_rope" in err

    err = one_line_error(capsys, ["bisect", "--backend", "no-such-backend", *cache])
    assert "no-such-backend" in err and "ad-emulator" in err

    err = one_line_error(capsys, ["bisect", "--task", "mmlux", *cache])
    assert "unknown task 'mmlux'" in err and "mmlu, gsm8k" in err
    assert not (tmp_path / "cache").exists()  # nothing was evaluated


@needs_demo
def test_dry_run_prints_plan_and_evaluates_nothing(tmp_path, capsys):
    cfg = tmp_path / "ad.yaml"
    cfg.write_text("world_size: 2\ntransforms:\n  optimize_rope: {fault: rope_applied_twice}\n")
    rc = main(["bisect", "--config", str(cfg), "--dry-run", "--cache-dir", str(tmp_path / "cache"),
               "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0
    for text in ("phases:", "worst case:", "optimize_rope", "fusion", "compile_backend", "world_size",
                 "switches detect_sharding, sharding_transform_executor", "4c", "requires world_size"):
        assert text in out, text
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def _stable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "run"}


@needs_demo
def test_sigkill_then_rerun_repeats_no_evaluation_and_same_summary(tmp_path):
    from harness.evaluation.store import Store

    cfg = tmp_path / "ad.yaml"
    cfg.write_text("transforms:\n  optimize_rope: {fault: rope_applied_twice}\n")
    cache, out = tmp_path / "cache", tmp_path / "reports"
    argv = [sys.executable, "-m", "harness", "bisect", "--config", str(cfg), "--samples", "18", "--executor",
            "inprocess", "--quiet", "--cache-dir", str(cache), "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if (cache / "store.sqlite").exists() or any(cache.glob("*.sqlite*")):
                with Store(cache) as st:
                    if len(st) >= 3:
                        break
            time.sleep(0.2)
        assert proc.poll() is None, "bisect finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    with Store(cache) as st:
        before = {r["key"] for r in st.rows()}
    assert len(before) >= 3 and not list(out.glob("bisect-*/summary.json"))

    def rerun():
        r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        (path,) = list(out.glob("bisect-*/summary.json"))
        return json.loads(path.read_text())

    first = rerun()
    with Store(cache) as st:
        after = {r["key"] for r in st.rows()}
    assert first["run"]["runner"]["evaluations_run"] == len(after - before)  # nothing stored was re-run
    assert first["outcome"] == "culprit" and first["culprits"][0]["knobs"] == ["optimize_rope"]
    second = rerun()
    assert second["run"]["runner"]["evaluations_run"] == 0
    assert _stable(second) == _stable(first)


@needs_demo
def test_phase5_breakdown_overlaps_the_search_on_a_fresh_run(tmp_path):
    """With worker processes, Phase 5 runs in its own process during the search (not after it),
    and a cached rerun computes it inline with the same result."""
    import json
    import subprocess
    import sys

    args = [sys.executable, "-m", "harness", "bisect", "--samples", "12", "--quiet",
            "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    summaries = []
    for _ in range(2):
        r = subprocess.run(args, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        (path,) = (tmp_path / "out").glob("*/summary.json")
        summaries.append(json.loads(path.read_text()))
    assert [s["run"]["phase5_computed"] for s in summaries] == ["background", "inline"]
    fresh, rerun = (s["phases"]["5"] for s in summaries)
    assert fresh["breakdown"]["flags"] == rerun["breakdown"]["flags"]
    assert fresh["per_subject"] == rerun["per_subject"]


def test_dry_run_trtllm_ad_without_tensorrt_llm_checks_the_keys_it_can(tmp_path, capsys, monkeypatch):
    """No tensorrt_llm here: the installed LlmArgs is unknown, so --dry-run says so and checks the keys against the
    fields of the versions read (configs/trtllm/llm_args_fields.yaml) instead of skipping them silently."""
    from harness.paths import REPO_ROOT

    monkeypatch.setenv("HARNESS_AD_DEFAULT_YAML", "")
    monkeypatch.delenv("HARNESS_AD_DEFAULT_YAML")
    default = REPO_ROOT / "tests" / "fixtures" / "trtllm_versions" / "newest_16e9bea0" / "tensorrt_llm" / "_torch" / \
        "auto_deploy" / "config" / "default.yaml"
    cfg = tmp_path / "ad.yaml"
    cfg.write_text("max_seq_lenn: 4096\nfree_mem_ratio: 0.8\ntransforms:\n  fuse_rmsnorm: {enabled: true}\n")
    rc = main(["bisect", "--backend", "trtllm-ad", "--backend-ref", "hf", "--default-yaml", str(default),
               "--config", str(cfg), "--dry-run", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "note: tensorrt_llm is not installed here: the 2 top-level config key(s) besides transforms are checked" in out
    assert "config key 'max_seq_lenn' is not an LlmArgs field in any TensorRT-LLM version read; did you mean " \
           "max_seq_len" in out
    assert "'free_mem_ratio' is not" not in out  # a real field (AutoDeployConfig era)
    assert "knobs searched (23" in out


@needs_demo
def test_dry_run_after_a_run_prunes_with_the_stored_full_run(tmp_path, capsys):
    from bisect_helpers import bisect_inprocess

    store = tmp_path / "store"
    config = "transforms:\n  optimize_rope: {fault: rope_applied_twice}\n"
    bisect_inprocess(tmp_path, store, config, samples="12")
    capsys.readouterr()
    rc = main(["bisect", "--config", str(tmp_path / "ad.yaml"), "--samples", "12", "--dry-run", "--cache-dir",
               str(store), "--out", str(tmp_path / "reports")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "pruned with the stored full-candidate run" in out
    searched_part, pruned_part = out.split("knobs searched")[1].split("no effect on this model, not searched")
    assert "fuse_fp8_linear" in pruned_part and "fuse_fp8_linear" not in searched_part
    searched = out.split("knobs searched (")[1].split(",")[0]
    assert int(searched) < 8
