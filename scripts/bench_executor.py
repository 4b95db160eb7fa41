"""Benchmark: what a fresh worker process costs per evaluation, by executor mode.

For each mode (inprocess, subprocess = ``python -m harness.commands.worker`` per evaluation,
fork-server = children of a preloaded fork server) it runs N uncached evaluations of the hf backend
on the demo model (different seeds, so nothing is cached) and records per evaluation: wall seconds
as the Runner sees it, seconds inside run_evaluation (``timings.total_s``), generation seconds, and
the overheads ``wall - generate`` (everything that is not generation: process start, imports, model
load, prompt building) and ``wall - total`` (process start and imports only).

    python scripts/bench_executor.py [--n 4] [--samples 12] [--out reports/bench_executor.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.evaluation.spec import EvalSpec  # noqa: E402
from harness.paths import DEMO_MMLU, DEMO_MODEL  # noqa: E402
from harness.execution.runner import Runner  # noqa: E402

MODES = {
    "inprocess": ("inprocess", {}),
    "subprocess": ("local", {"fork_server": False}),
    "fork-server": ("local", {"fork_server": True}),
}


def bench(mode: str, n: int, samples: int, cache: str) -> dict:
    executor, options = MODES[mode]
    rows = []
    with Runner(cache_dir=cache, use_cache=False, quiet=True, executor=executor, executor_options=options,
                timeout=600) as runner:
        for seed in range(n):
            spec = EvalSpec(backend="hf", model=str(DEMO_MODEL), dataset=str(DEMO_MMLU), samples=samples, seed=seed)
            t0 = time.monotonic()
            res = runner.evaluate(spec)
            wall = time.monotonic() - t0
            t = res.info.get("timings") or {}
            rows.append({"seed": seed, "status": res.status, "wall_s": round(wall, 3),
                         "total_s": round(t.get("total_s", float("nan")), 3),
                         "load_s": round(t.get("load_s", float("nan")), 3),
                         "generate_s": round(t.get("generate_s", float("nan")), 3),
                         "beyond_generation_s": round(wall - t.get("generate_s", 0.0), 3),
                         "process_overhead_s": round(wall - t.get("total_s", 0.0), 3)})
        stats = runner.stats
    warm = rows[1:] or rows
    return {
        "mode": mode, "evaluations": rows, "runner_stats": stats,
        "first_beyond_generation_s": rows[0]["beyond_generation_s"],
        "warm_median_beyond_generation_s": round(statistics.median(r["beyond_generation_s"] for r in warm), 3),
        "warm_median_process_overhead_s": round(statistics.median(r["process_overhead_s"] for r in warm), 3),
        "warm_median_wall_s": round(statistics.median(r["wall_s"] for r in warm), 3),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4, help="evaluations per mode (default 4)")
    ap.add_argument("--samples", type=int, default=12)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--out", default="reports/bench_executor.json")
    args = ap.parse_args(argv)
    if not (DEMO_MODEL / "config.json").is_file():
        print(f"error: demo model missing at {DEMO_MODEL}; build it with scripts/build_demo.py", file=sys.stderr)
        return 2
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    out = {"machine": {"cpus": os.cpu_count(), "loadavg_at_start": load, "python": sys.version.split()[0]},
           "samples": args.samples, "n": args.n, "modes": {}}
    with tempfile.TemporaryDirectory() as cache:
        for mode in args.modes:
            out["modes"][mode] = bench(mode, args.n, args.samples, cache)
            m = out["modes"][mode]
            print(f"{mode:12s} first {m['first_beyond_generation_s']:.2f}s beyond generation; warm median "
                  f"{m['warm_median_beyond_generation_s']:.2f}s beyond generation, "
                  f"{m['warm_median_process_overhead_s']:.2f}s process overhead, wall {m['warm_median_wall_s']:.2f}s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
