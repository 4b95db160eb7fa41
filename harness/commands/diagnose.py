"""`python -m harness diagnose`: one backend, one model, one config, N samples (docs/method.md, "Phase 1").

Prints the first prompt in full (check it against the real evaluator), a per-sample table
(id, subject, reference, output, correct), the accuracy with a 95% Wilson interval, the task's
own score (MMLU weighted accuracy; GSM8K mean of strict-match and flexible-extract) and per-subject
accuracies, then writes ``<out>/<timestamp>-<label>/`` with ``samples.jsonl`` and ``run.json``.

Every input is checked before the evaluation (backend, model files, config, plugins, data set,
seed, a writable --out). The evaluation runs in a worker process (``harness.execution.executor``,
as bisect's do), so an engine crash, a hang past --timeout or a plugin's ``sys.exit`` is an
unresolved result, never a silent exit of this command. Exit 0 when the evaluation ran, 1 when
it is unresolved (the error is printed and run.json is still written), 2 on bad input.
"""
from __future__ import annotations

import sys

from harness.commands.prompts import add_prompt_arguments, add_task_arguments


def add_arguments(parser) -> None:
    from harness.commands.options import add_config_argument, add_quiet_argument
    from harness.paths import DEMO_MODEL

    parser.add_argument("--backend", default="hf", help="Backend: hf, ad-emulator, trtllm-ad, trtllm-pt (default hf).")
    parser.add_argument("--model", default=str(DEMO_MODEL),
                        help="Model directory (default: the shipped demo model harness/assets/demo_model).")
    add_config_argument(parser, "AD-style YAML config (an overlay on the backend's default.yaml) for AD backends; "
                        "TensorRT-LLM's --extra_llm_api_options.")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                        help="Plugin module or file to load before the model (repeatable).")
    add_task_arguments(parser, default_samples=100)
    add_prompt_arguments(parser)
    parser.add_argument("--out", "--output_path", dest="out", default="reports", metavar="DIR",
                        help="Where run directories are written (default reports/).")
    parser.add_argument("--timeout", type=float, default=1800, metavar="SECONDS",
                        help="Seconds before the evaluation counts as unresolved (a hung engine or plugin; "
                             "default 1800).")
    parser.add_argument("--label", default=None, help="Run directory label (default diagnose-<backend>-<task>).")
    add_quiet_argument(parser)


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval for k successes out of n (scipy.stats.binomtest)."""
    if n == 0:
        return float("nan"), float("nan")
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def _clip(text: str, width: int) -> str:
    r = repr(text)
    return r if len(r) <= width else r[: width - 3] + "..."


def sample_table(records: list[dict], output_width: int = 40) -> str:
    cols = ["id", "subject", "gold", "output", "correct"]  # gold: the data set's answer
    rows = [[r["id"], r["subject"], str(r["reference"]), _clip(r.get("output") or "", output_width),
             "yes" if r["correct"] else "no"] for r in records]
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def accuracy_line(records: list[dict]) -> str:
    n = len(records)
    k = sum(bool(r["correct"]) for r in records)
    lo, hi = wilson(k, n)
    acc = 100.0 * k / n if n else float("nan")
    return f"accuracy: {acc:.2f}% ({k}/{n}), 95% Wilson interval [{100 * lo:.2f}, {100 * hi:.2f}]"


def run(args) -> int:
    from harness.evaluation.spec import build_samples

    spec = _spec(args)
    _check_inputs(spec, args)  # bad input: one line, before printing anything or evaluating
    _, samples = build_samples(spec)
    if not args.quiet and samples:
        print_first_prompt(samples[0])
    demo_note = demo_task_note(spec)
    if demo_note and not args.quiet:  # before the run as well as with the result: the run can take minutes
        print(f"note: {demo_note}", file=sys.stderr)
    result = evaluate_with_progress(spec, args.timeout, quiet=args.quiet)
    run_dir = _write_run_dir(args.out, spec, result)
    if result.status != "ok":
        print_unresolved(result, quiet=args.quiet)
        print(f"run directory: {run_dir}")
        return 1
    if not args.quiet:
        print(sample_table(result.records))
        print()
    print(accuracy_line(result.records))
    if not args.quiet:
        print_metrics(spec.task, result)
    from harness.evaluation.run import truncation_note

    for note in (demo_note, truncation_note(result.info, len(result.records))):
        if note:
            print(f"note: {note}")
    print(f"run directory: {run_dir}")
    return 0


def evaluate_with_progress(spec, timeout: float, quiet: bool):
    """The evaluation in a fresh worker process with a time limit (harness/execution/executor.py), with a
    progress bar over its samples fed through the worker's progress file (harness/backends/progress.py).
    Bad input the engine reports there is raised (one error line); anything else is the result."""
    import tempfile
    import time
    from pathlib import Path

    from harness.backends.progress import PROGRESS_FILE_ENV
    from harness.execution.executor import get_executor
    from harness.execution.progress import Progress

    progress = Progress(quiet=quiet)
    token = progress.start(spec.label)
    executor = get_executor("local", timeout=timeout, fork_server=False)  # one evaluation: no server to amortise
    t0 = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="harness-diagnose-") as work:
            progress_file = Path(work) / "progress"
            with progress.watch(token, progress_file):
                result = executor.run(spec, Path(work), {PROGRESS_FILE_ENV: str(progress_file)})
        progress.finish(token, spec.label, result, False, time.monotonic() - t0)
        return result
    except BaseException as exc:
        progress.abort(token, spec.label, exc)
        raise
    finally:
        executor.close()
        progress.close()


def demo_task_note(spec) -> str | None:
    """What the shipped demo model cannot show: it was trained on the demo MMLU subjects and answers with a
    letter, so GSM8K's chain-of-thought arithmetic scores about 0% on it (harness/assets/README.md)."""
    from pathlib import Path

    from harness.paths import DEMO_MODEL

    try:
        demo = Path(spec.model).expanduser().resolve() in (DEMO_MODEL.resolve(), (DEMO_MODEL.parent / "demo_model_fp8").resolve())
    except OSError:
        return None
    if demo and spec.task == "gsm8k":
        return ("the demo model is trained on the demo MMLU subjects only and answers with a letter: on GSM8K it "
                "scores about 0%, which says nothing about the backend. Use it to check the GSM8K prompts, stop "
                "strings and scoring (the exact lm-eval pipeline); judge accuracy with a real model.")
    return None


def _spec(args):
    from harness.evaluation.spec import EvalSpec
    from harness.tasks.base import PromptOptions

    config = {}
    if args.config:
        from harness.config import load_yaml

        config = load_yaml(args.config)
    options = PromptOptions.from_args(args, tokenizer=None)
    return EvalSpec(
        backend=args.backend, model=args.model, task=args.task, config=config, dataset=args.dataset,
        samples=args.samples, seed=args.seed,
        prompt_options={k: v for k, v in options.to_dict().items() if k != "tokenizer" or v},
        plugins=list(args.plugin), label=args.label or f"diagnose-{args.backend}-{args.task}",
    )


def _check_inputs(spec, args) -> None:
    """Everything that can be checked without the engine: backend, model files, config and plugins,
    seed, --timeout, a writable --out (before the evaluation, not after it)."""
    from harness.backends import capabilities, get_backend
    from harness.errors import HarnessError
    from harness.evaluation.rundir import check_out_dir
    from harness.tasks.base import check_seed

    backend = get_backend(spec.backend)  # unknown backend -> error before any work
    if capabilities(spec.backend).needs_local_model:
        from harness.backends.hf.backend import check_model_dir

        check_model_dir(spec.model)
    check_seed(spec.seed)
    if not args.timeout > 0:
        raise HarnessError(f"--timeout must be > 0 seconds, got {args.timeout:g}; pass e.g. --timeout 1800")
    takes_ad = capabilities(spec.backend).takes_ad_config
    default_yaml = backend.default_yaml() if takes_ad else None
    if spec.plugins or default_yaml:
        from harness.config.ops import validate_transform_names

        catalogue = backend.catalogue(str(default_yaml), spec.config, list(spec.plugins))  # loads the plugins
        if takes_ad:
            validate_transform_names(spec.config, catalogue)
            backend.check_config(spec.config, default_yaml)
    check_out_dir(args.out)


def _write_run_dir(out, spec, result):
    """``<out>/<timestamp>-<label>/`` with samples.jsonl and run.json (also for an unresolved run)."""
    from harness.evaluation.rundir import new_run_dir, write_run
    from harness.paths import DATASET_SUBDIRS, default_dataset

    run_dir = new_run_dir(out, spec.label)
    dataset = spec.dataset or (default_dataset(spec.task) if spec.task in DATASET_SUBDIRS else None)
    write_run(run_dir, spec, result, extra={"dataset_resolved": dataset, "command": "diagnose"})
    return run_dir


# -- printing ------------------------------------------------------------------------------------

def print_first_prompt(sample) -> None:
    print(f"=== first prompt ({sample.id}), exactly as sent ===")
    print(sample.prompt)
    print("=== end of first prompt ===")
    sys.stdout.flush()


def print_unresolved(result, quiet: bool) -> None:
    print(f"unresolved: {result.error}", file=sys.stderr)
    if result.log_tail and not quiet:
        print(result.log_tail.rstrip().splitlines()[-1], file=sys.stderr)


def print_metrics(task: str, result) -> None:
    """The task's own score, per filter and per subject, and the timings."""
    metrics = result.metrics or {}
    if "score" in metrics:
        print(f"task score ({task}, as the evaluator reports it): {metrics['score']:.2f} (n={metrics.get('n')})")
    for name, m in (metrics.get("per_filter") or {}).items():
        print(f"  {name}: {m['score']:.2f}")
    per_subject = metrics.get("per_subject") or {}
    if len(per_subject) > 1:
        width = max(len(s) for s in per_subject)
        for subject, m in per_subject.items():
            print(f"  {subject.ljust(width)}  {m['score']:6.2f}  (n={m['n']})")
    t = (result.info or {}).get("timings") or {}
    if t:
        print("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in t.items()))
