"""Benchmark: what Phase 4's localization adds to the demo bisect.

Runs ``python -m harness bisect`` on the default demo (the demo model and data, configs/demo/ad_demo.yaml,
the local executor), each time with a fresh evaluation cache, alternately with the localization (the
default) and with ``--no-localize``, ``--repeats`` times each; then reruns one localized run from its
cache. Per run: the bisect's wall seconds, its evaluations and their mean wall (the runner's backend
seconds / evaluations run), and, for the localized runs, the step's own seconds (from the moment the
phases end to the result: ``summary.json`` run.localize) and the worker's breakdown. The cost is stated two
ways, in evaluations' worth (divided by the mean evaluation of the same run):

* ``step``: the localization step's own wall time at the end of the bisect (its worker was started
  when the search began, so the torch imports overlap the search);
* ``wall_difference``: median bisect wall with minus without (includes that overlap's contention for
  the CPU, and the run-to-run noise of a shared machine);
* ``normalized_wall_difference``: the same in each run's own unit, its bisect wall divided by its mean
  evaluation (the machine's load slows a run's evaluations and its wall alike, so this stays comparable
  across runs that met different loads; every run makes the same evaluations).

    python scripts/bench_localize.py [--repeats 3] [--out reports/bench_localize.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bisect_once(workdir: Path, localize: bool, cache: Path | None = None) -> dict:
    cache = cache or workdir / "cache"
    out = workdir / "reports"
    cmd = [sys.executable, "-m", "harness", "bisect", "--quiet", "--cache-dir", str(cache), "--out", str(out)]
    if not localize:
        cmd.append("--no-localize")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bisect failed: {proc.stderr[-2000:]}")
    summary = json.loads(next(out.glob("bisect-*/summary.json")).read_text())
    run = summary["run"]
    evals = run["runner"]["evaluations_run"]
    mean_eval = run["runner"]["backend_seconds"] / evals if evals else None
    loc = run.get("localize") or {}
    first = (summary.get("localization") or {}).get("first_divergence") or {}
    return {"localize": localize, "wall_s": round(wall, 2), "bisect_wall_s": run["wall_seconds"],
            "evaluations": evals, "mean_evaluation_s": round(mean_eval, 3) if mean_eval else None,
            "localize_step_s": loc.get("seconds"), "localize_cached": loc.get("cached"),
            "worker_timings": loc.get("timings"), "first_divergence": first.get("module"),
            "outcome": summary["outcome"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "reports" / "bench_localize.json"))
    args = p.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-localize-") as tmp:
        for r in range(args.repeats):
            for localize in ((True, False) if r % 2 == 0 else (False, True)):
                d = Path(tmp) / f"{r}-{int(localize)}"
                d.mkdir()
                runs.append(bisect_once(d, localize))
                print(json.dumps(runs[-1]), flush=True)
        rerun_dir = Path(tmp) / "rerun"
        rerun_dir.mkdir()
        rerun = bisect_once(rerun_dir, True, cache=Path(tmp) / "0-1" / "cache")
    result = summarize(runs, rerun)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("runs", "rerun_from_cache")}, indent=2))
    return 0


def summarize(runs: list[dict], rerun: dict) -> dict:
    """The cost from the runs (see the module doc)."""
    for x in runs:
        x["wall_evaluations"] = round(x["bisect_wall_s"] / x["mean_evaluation_s"], 2)
    with_ = [x for x in runs if x["localize"]]
    without = [x for x in runs if not x["localize"]]
    step_evals = [x["localize_step_s"] / x["mean_evaluation_s"] for x in with_]
    mean_eval = statistics.median(x["mean_evaluation_s"] for x in runs)
    diff = statistics.median(x["bisect_wall_s"] for x in with_) - statistics.median(x["bisect_wall_s"] for x in without)
    norm = statistics.median(x["wall_evaluations"] for x in with_) - \
        statistics.median(x["wall_evaluations"] for x in without)
    return {
        "what": "Phase 4 localization's cost on the default demo bisect (fresh cache, local executor)",
        "command": "python -m harness bisect [--no-localize]",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "note": "a shared 2-core VM: other jobs ran at the same time"},
        "runs": runs, "rerun_from_cache": rerun,
        "median_evaluation_s": round(mean_eval, 3),
        "localize_step_s_median": round(statistics.median(x["localize_step_s"] for x in with_), 3),
        "localize_step_evaluations_median": round(statistics.median(step_evals), 2),
        "localize_step_evaluations_max": round(max(step_evals), 2),
        "wall_difference_s": round(diff, 2),
        "wall_difference_evaluations": round(diff / mean_eval, 2),
        "normalized_wall_difference_evaluations": round(norm, 2),
        "target_evaluations": 2.0,
    }


if __name__ == "__main__":
    sys.exit(main())
