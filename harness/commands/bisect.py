"""`python -m harness bisect`: Phases 0-6 of the AD accuracy method (docs/method.md), automated.

With no arguments it runs the embedded demo: the demo model and data, the hf reference backend
against the ad-emulator with the demo config (configs/demo/ad_demo.yaml, one planted fault).
Every evaluation is cached under --cache-dir, so a rerun (or a rerun after a kill) repeats no
finished evaluation and writes the same summary.

Writes <out>/bisect-<model>-<task>-<hash>/: report.md, report.html, summary.json (schema:
harness/bisect/report/SCHEMA.md), samples.jsonl and decisive/ (the decisive comparison), repro/
(minimal_failing.yaml, confirming.yaml, command.sh), fake_quant_debug.yaml when Phase 4a ran,
localization.png when Phase 4's layer-wise localization ran, breakdown/ (Phase 5).

Exit status: 0 when the bisect completed, whatever the verdict (regressed, same, inconclusive,
unresolved or a suspect harness: read summary.json "verdict"); 2 on bad input (unknown knob or
backend, malformed YAML, missing model or data set, unwritable output directory). For a
git-bisect style 0/1/125 exit code use `python -m harness check`.
"""
from __future__ import annotations

import argparse

EPILOG = ("Exit status: 0 when the bisect completed (whatever the verdict; see summary.json), "
          "2 on bad input. Example: python -m harness bisect --model DIR --config my_ad.yaml --samples 200")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.commands.options import add_config_argument, add_quiet_argument, add_timeout_argument
    from harness.commands.prompts import add_prompt_arguments, add_task_arguments
    from harness.execution.slots import parse_max_parallel
    from harness.paths import DEMO_MODEL

    p.epilog = EPILOG
    p.add_argument("--model", default=str(DEMO_MODEL), help="model checkpoint directory (default: the demo model)")
    add_task_arguments(p, default_samples=100)
    add_prompt_arguments(p)
    add_config_argument(p, "AD YAML (an overlay on the default.yaml in force, as AD's yaml_extra / TensorRT-LLM's "
                        "--extra_llm_api_options); default: the demo config when --model is the demo and --backend "
                        "is ad-emulator, else none")
    p.add_argument("--backend-ref", default=None, help="reference backend (default trtllm-pt when tensorrt_llm is "
                   "importable, else hf)")
    p.add_argument("--backend", default=None, help="candidate backend (default trtllm-ad when tensorrt_llm is "
                   "importable, else ad-emulator)")
    p.add_argument("--default-yaml", default=None, help="the AD default.yaml in force (overrides discovery)")
    p.add_argument("--reference-score", type=float, default=None, help="expected reference score (points) for "
                   "Phase 0's consistency check")
    p.add_argument("--references", default=None, help="TensorRT-LLM references directory or YAML (the model's entry "
                   "gives the expected score)")
    p.add_argument("--reference-protocol", default="auto", metavar="P",
                   help="sampling of the reference runs (harness/bisect/protocol.py): auto (default: paired runs "
                   "with AD's test protocol end_id=-1, the reference-score check with accuracy_core's, which stops "
                   "at EOS), ad-test (both end_id=-1) or accuracy-core (both stop at EOS)")
    p.add_argument("--strategy", choices=["adaptive", "linear"], default=None,
                   help="search strategy (default adaptive: group testing; linear: one knob at a time)")
    p.add_argument("--ablation", default=None, metavar="FILE", help="declarative ablation plan (ablations/*.yaml) "
                   "instead of the default knob list")
    p.add_argument("--unquantized-model", default=None, help="unquantized (BF16/FP16) version of the model for "
                   "Phase 4a's baseline")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE", help="plugin transform file "
                   "(ad-emulator; repeatable)")
    p.add_argument("--aa-repeats", type=int, default=None, metavar="K", help="A/A repeats of the reference to "
                   "measure its run-to-run noise (default: 1 when the reference backend is not deterministic, e.g. "
                   "trtllm-pt; 0 otherwise)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of each verdict (default 0.05)")
    p.add_argument("--min-effect", type=float, default=1.0, help="smallest accuracy difference (points) called a "
                   "regression by accuracy alone (default 1.0)")
    p.add_argument("--out", "--output_path", dest="out", default="reports", metavar="DIR",
                   help="run directory root (default reports/)")
    p.add_argument("--cache-dir", default=".harness", help="evaluation store (default .harness/)")
    p.add_argument("--no-cache", action="store_true", help="do not read cached evaluations (still stores new ones)")
    add_timeout_argument(p, dest="eval_timeout")
    p.add_argument("--max-parallel", type=parse_max_parallel, default=1, metavar="N|auto",
                   help="evaluations run at once, each with its own GPUs (world_size of them) or share of the CPU "
                   "cores; auto: one per GPU, or per core on a CPU machine (default 1)")
    add_quiet_argument(p)
    p.add_argument("--dry-run", action="store_true", help="print the plan (phases, knobs, worst-case evaluations) "
                   "and exit without evaluating")
    p.add_argument("--no-localize", action="store_true", help="skip Phase 4's localization of the first divergence "
                   "inside the culprit (layer-wise comparison, weight check, graph-dump diff; on by default after a "
                   "confirmed culprit or when the minimal config still regresses)")
    p.add_argument("--dump-graphs", default=None, metavar="DIR", help="trtllm-ad: AD_DUMP_GRAPHS_DIR for every "
                   "evaluation, a fresh subdirectory DIR/<key> each (AD deletes that directory first); the path is "
                   "in each evaluation's info")
    from harness.execution.slurm import add_executor_arguments

    add_executor_arguments(p)



def run_dir_name(inp) -> str:
    import re
    from pathlib import Path

    from harness.jsonio import canonical_json, sha

    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(str(inp.model)).name or "model").strip("-.")[:40] or "model"
    return f"bisect-{name}-{inp.task}-{sha(canonical_json(inp.identity()), 8)}"


def warm_imports() -> None:
    """Import the analysis stack (scipy, pandas, matplotlib, verdict, classify, breakdown) in a background
    thread while the first evaluation runs in its worker process, so it is off the critical path."""
    import threading

    def work():
        try:
            import pandas  # noqa: F401  (first: the first cache key needs it)

            import harness.tasks.mmlu  # noqa: F401
            import scipy.stats  # noqa: F401

            import harness.comparison.verdict  # noqa: F401
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot  # noqa: F401

            import harness.analysis.breakdown  # noqa: F401
            import harness.analysis.classify  # noqa: F401
        except Exception:  # noqa: BLE001 - only a head start; the real imports report errors
            pass

    threading.Thread(target=work, name="harness-warm-imports", daemon=True).start()


def demo_config_default(args) -> str | None:
    """--config as given; with none, the demo model on the emulator gets the demo config (the one
    with the planted fault), so that `python -m harness bisect` alone runs the demo."""
    from pathlib import Path

    from harness.backends import default_backends
    from harness.paths import DEMO_CONFIG, DEMO_MODEL

    if args.config is not None:
        return args.config
    backend = args.backend or default_backends()[1]
    is_demo = Path(args.model).expanduser().resolve() == DEMO_MODEL.resolve()
    return str(DEMO_CONFIG) if backend == "ad-emulator" and is_demo else None


def run(args) -> int:
    import sys

    from harness.bisect.inputs import resolve_inputs
    from harness.bisect.plan import build_plan

    if getattr(args, "executor", "local") != "inprocess" and not args.dry_run:
        warm_imports()
    args.config = demo_config_default(args)
    inp = resolve_inputs(args)
    from harness.commands.diagnose import demo_task_note

    note = demo_task_note(inp)
    if note:
        print(f"note: {note}", file=sys.stderr)
    from harness.backends import get_backend
    from harness.bisect.core_path import ladder_rungs

    plan = build_plan(inp.catalogue, inp.user_config, inp.strategy, inp.ablation,
                      quantized=bool(inp.quant.get("quantized")), unquantized_model=bool(inp.unquantized_model),
                      aa_repeats=inp.aa_repeats)
    plan.set_ladder(ladder_rungs(get_backend(inp.backend), inp.catalogue, plan.config(inp.user_config, ())))
    if args.dry_run:
        print_plan(inp, plan)
        return 0
    return run_bisect(args, inp, plan)


def print_plan(inp, plan) -> None:
    from harness.bisect.isolate import prune_from_store

    print(f"bisect plan: {inp.backend} vs {inp.backend_ref}, model {inp.model}, task {inp.task}, "
          f"{inp.samples or 'all'} samples")
    print(f"config: {inp.config_path or '(none)'}; default.yaml in force: {inp.default_yaml}")
    for note in inp.config_notes:
        print(f"note: {note}")
    pruned, key = prune_from_store(inp, plan)
    if key:
        print(f"pruned with the stored full-candidate run {key[:12]}: {len(pruned)} knob(s) had no effect on this model")
    else:
        print("knobs whose transforms report skipped / 0 matches in the full-candidate run (Phase 1) will not be "
              "searched; rerun --dry-run after a run to see them")
    print(plan.render())


def run_bisect(args, inp, plan) -> int:
    """The phases on a Runner, then the run directory; prints the verdict and where the report is. The
    directory is built in a staging directory and published whole at the end (harness/evaluation/rundir.py)."""
    import shutil
    import sys
    import time

    from harness.bisect.orchestrator import Bisector
    from harness.bisect.report import write_report
    from harness.errors import HarnessError
    from harness.evaluation.rundir import publish_run_dir, staging_dir
    from harness.execution.runner import Runner
    from harness.execution.slurm import executor_options

    final = inp.out_root / run_dir_name(inp)
    run_dir = staging_dir(final)
    started = time.time()
    t0 = time.monotonic()
    _, ex_opts, _ = executor_options(args)
    dump_graphs = getattr(args, "dump_graphs", None)
    try:
        with Runner(cache_dir=inp.cache_dir, use_cache=inp.use_cache, timeout=inp.eval_timeout,
                    max_parallel=inp.max_parallel, quiet=inp.quiet, executor=inp.executor, executor_options=ex_opts,
                    dump_graphs_dir=dump_graphs) as runner:
            state = Bisector(inp, plan, runner, run_dir).run()
            runner.progress.phase("writing the report")
            section = run_section(state, runner.stats, started, time.monotonic() - t0, final, dump_graphs)
            try:
                summary = write_report(run_dir, inp, plan, state, section)
            except HarnessError as exc:  # name the run directory the user asked for, not the staging one
                raise HarnessError(str(exc).replace(str(run_dir), str(final))) from None
            publish_run_dir(run_dir, final)
            runner.progress.close()  # the display ends before the result is printed
            # print before the runner shuts its worker machinery down (that can take a few seconds)
            print(f"verdict: {summary['verdict']} - {summary['headline']}")
            for step in summary["next_steps"][:3]:
                print(f"  next: {step}")
            # the time split again, now with the report written
            print(timing_line(run_section(state, runner.stats, started, time.monotonic() - t0, final),
                              len(summary["trail"])))
            print(f"report: {final / 'report.md'} (and report.html)")
            sys.stdout.flush()
    finally:  # a failed or interrupted run publishes nothing (the evaluations are in the store)
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


def timing_line(section: dict, trail_steps: int) -> str:
    """How many evaluations and where the time went, in the words the progress bar and the report use."""
    r, t = section["runner"], section["time"]
    calls = r["hits"] + r["evaluations_run"]
    return (f"{calls} evaluations ({r['evaluations_run']} run, {r['hits']} from the cache) in {trail_steps} trail "
            f"steps; {t['command_seconds']:.1f} s since the command started: {t['engine_seconds']:.1f} s in the "
            f"engines, {t['worker_overhead_seconds']:.1f} s starting workers and passing results, "
            f"{t['orchestration_seconds']:.1f} s in the orchestrator, {t['startup_seconds']:.1f} s start-up")


def process_age() -> float | None:
    """Seconds since this process started (Linux /proc), so start-up and imports are counted too."""
    import os

    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def run_section(state, stats: dict, started: float, wall: float, run_dir, dump_graphs: str | None = None) -> dict:
    """summary.json's ``run``: when, how long, the runner's statistics, each step's timing, and the time split
    (``time``): the engines (inside the workers), worker overhead (process start, imports, passing the result),
    the orchestrator (judging, the cache, Phase 5, the report) and the command's start-up before the run."""
    import time
    from pathlib import Path

    overhead = max(0.0, wall - stats.get("busy_seconds", stats["backend_seconds"]))  # no evaluation running
    age = process_age()
    command = max(age, wall) if age is not None else wall
    split = {"command_seconds": round(command, 3), "run_seconds": round(wall, 3),
             "startup_seconds": round(max(0.0, command - wall), 3),
             "engine_seconds": stats["engine_seconds"], "worker_overhead_seconds": stats["worker_overhead_seconds"],
             "orchestration_seconds": round(overhead, 3),
             "orchestration_fraction": round(overhead / command, 4) if command else None,
             "worker_overhead_per_evaluation_seconds": round(stats["worker_overhead_seconds"]
                                                             / stats["evaluations_run"], 3)
             if stats["evaluations_run"] else None}
    return {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "wall_seconds": round(wall, 3),
            "runner": stats, "time": split, "harness_overhead_seconds": round(overhead, 3),
            "harness_overhead_fraction": round(overhead / wall, 4) if wall else None,
            "steps": [{"index": s.index, "cached": s.cached, "seconds": s.seconds, "attempts": s.attempts}
                      for s in state.trail],
            **state.run_notes, "run_dir": str(run_dir),
            "dump_graphs_dir": str(Path(dump_graphs).resolve()) if dump_graphs else None}
