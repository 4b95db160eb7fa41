"""`python -m harness check ...`: one evaluation against a reference or a threshold, for `git bisect run`.

    git bisect start <bad-engine-commit> <good-engine-commit>
    git bisect run sh -c 'pip install -e . -q && cd /path/to/harness && python -m harness check \
        --backend trtllm-ad --model meta-llama/Llama-3.1-8B-Instruct --config my_ad.yaml --task mmlu \
        --samples 1000 --references $TRTLLM/tests/integration/defs/accuracy/references'

Exit status (git bisect run's protocol; tests/test_check_git_bisect.py runs a real `git bisect run`):
  0    good: the score passes TensorRT-LLM's hypothesis test against the reference
       (score >= ref + z(alpha) * sqrt(2 sigma^2 / n)), or reaches --threshold;
  1    bad: it does not;
  125  untestable at this commit: the evaluation crashed, hung (--timeout), ran out of memory, or the
       engine rejected the config (e.g. a transform this engine version does not have); git bisect
       skips the commit. The log tail is triaged (configs/triage_patterns.yaml);
  128  anything that is the user's or the harness's fault, the same at every commit: a usage error
       (an unknown or misspelt flag: `check` parses its own arguments, so argparse's 2 never
       reaches git), bad input checked before the evaluation (task, data set, samples, seed,
       model files, plugins, reference spec), the evaluation store, the Slurm submission, and any
       unexpected exception. git bisect run aborts instead of blaming or skipping every commit.
The evaluation cache is NOT read by default (the cache key holds the engine's version string,
which does not change between the commits being bisected); pass --cache to reuse results.
"""
from __future__ import annotations

import argparse
import sys

EXIT_GOOD, EXIT_BAD, EXIT_SKIP, EXIT_ABORT = 0, 1, 125, 128


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness.commands.options import add_config_argument, add_timeout_argument
    from harness.execution.slurm import add_executor_arguments
    from harness.paths import DEMO_MODEL

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ("exit status: 0 good, 1 bad, 125 untestable at this commit (crash, timeout, out of memory, the "
                "engine rejects the config: git bisect skips), 128 a usage error, bad input or a harness failure "
                "(git bisect run aborts)")

    def _exit(status=0, message=None):  # argparse usage errors: 128 so `git bisect run` aborts
        if message:
            sys.stderr.write(message)
        raise SystemExit(EXIT_ABORT if status else 0)

    p.exit = _exit
    p.add_argument("--backend", default=None, help="backend to evaluate: hf, ad-emulator, trtllm-ad, trtllm-pt "
                   "(default trtllm-ad when tensorrt_llm is importable, else ad-emulator)")
    p.add_argument("--model", default=str(DEMO_MODEL), help="model path or hub id (default: the demo model)")
    add_config_argument(p, "AD YAML overlay (backends that take AD configs; TensorRT-LLM's --extra_llm_api_options)")
    p.add_argument("--task", default="mmlu", help="task (default mmlu)")
    p.add_argument("--samples", "--num_samples", dest="samples", type=int, default=None, metavar="N",
                   help="samples (default: the reference entry's num_samples, else the task's TRT-LLM NUM_SAMPLES)")
    p.add_argument("--dataset", "--dataset_path", dest="dataset", default=None, metavar="DIR",
                   help="data set directory (default: $LLM_MODELS_ROOT/... or the demo)")
    p.add_argument("--seed", "--random_seed", dest="seed", type=int, default=0, metavar="N",
                   help="evaluator random seed (default 0)")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE", help="plugin transform file (ad-emulator)")
    ref = p.add_argument_group("what to check against (one of)")
    ref.add_argument("--reference-score", type=float, default=None, metavar="X",
                     help="reference accuracy (points); pass/fail by TensorRT-LLM's threshold at n samples")
    ref.add_argument("--references", default=None, metavar="DIR|YAML",
                     help="TensorRT-LLM reference YAML directory (one <task>.yaml) or file")
    ref.add_argument("--threshold", type=float, default=None, metavar="X",
                     help="absolute pass mark (points): good when score >= X")
    p.add_argument("--model-id", default=None, help="model id in the reference YAML (default: --model)")
    p.add_argument("--spec", action="append", default=[], metavar="KEY=VALUE",
                   help="reference spec key (dtype, quant_algo, kv_cache_quant_algo, spec_dec_algo, extra_acc_spec); "
                        "repeatable")
    p.add_argument("--sigma", type=float, default=None, help="override the reference entry's sigma")
    p.add_argument("--alpha", type=float, default=None, help="override the reference entry's alpha")
    add_timeout_argument(p)
    p.add_argument("--cache-dir", default=".harness", help="evaluation store (default .harness)")
    p.add_argument("--cache", action="store_true", help="reuse cached evaluations (off by default: the cache key "
                   "holds the engine's version string, which stays the same across the commits git bisect checks out)")
    p.add_argument("--json", action="store_true", help="print the outcome as one JSON object")
    add_executor_arguments(p)


def _parse_spec(items: list[str]) -> dict:
    from harness.errors import HarnessError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HarnessError(f"--spec {item!r} must look like KEY=VALUE, e.g. --spec quant_algo=FP8")
        out[key.strip()] = value.strip()
    return out


def _prepare(args):
    """Everything that does not depend on the engine commit; errors here abort git bisect (128)."""
    from dataclasses import replace
    from pathlib import Path

    from harness.config.io import load_yaml
    from harness.errors import HarnessError
    from harness.evaluation.spec import EvalSpec
    from harness.paths import default_dataset
    from harness.comparison.references import find_reference, lookup, normalize_spec
    from harness.tasks import get_task

    given = [x is not None for x in (args.reference_score, args.references, args.threshold)]
    if sum(given) != 1:
        raise HarnessError("pass exactly one of --reference-score X, --references DIR or --threshold X")
    spec_keys = normalize_spec(_parse_spec(args.spec))
    ref = None
    if args.reference_score is not None:
        ref = lookup({"_": [{"accuracy": args.reference_score}]}, "_", args.task, {}, source="--reference-score",
                     no_reference=False)
        ref = replace(ref, model=args.model_id or args.model)
    elif args.references is not None:
        ref = find_reference(args.references, args.model_id or args.model, args.task, spec_keys)
    if ref is not None:
        if args.sigma is not None:
            ref = replace(ref, sigma=args.sigma)
        if args.alpha is not None:
            ref = replace(ref, alpha=args.alpha)
    samples = args.samples if args.samples is not None else (ref.num_samples if ref else None)
    overlay = load_yaml(args.config) if args.config else {}
    get_task(args.task)  # before the task's default data set is looked up
    dataset = args.dataset or default_dataset(args.task)
    if args.dataset and not Path(args.dataset).exists():
        raise HarnessError(f"--dataset {args.dataset!r} does not exist; pass the data set directory")
    for p in args.plugin:
        if not Path(p).is_file():
            raise HarnessError(f"--plugin {p!r} does not exist; pass a plugin .py file")
    if args.backend is None:
        from harness.backends import default_backends

        args.backend = default_backends()[1]
    spec = EvalSpec(backend=args.backend, model=args.model, task=args.task, config=overlay, dataset=dataset,
                    samples=samples, seed=args.seed, plugins=[str(Path(p).resolve()) for p in args.plugin],
                    label=f"check {args.backend} {Path(str(args.model)).name} {args.task}")
    _check_up_front(spec)
    return spec, ref, samples


def _check_up_front(spec) -> None:
    """What is the same at every engine commit, checked before the evaluation so a mistake aborts git
    bisect (128) instead of skipping (125) or blaming (1) every commit: backend, task, seed, samples,
    the data set's files (the exact prompts are built here), the model's files."""
    from pathlib import Path

    from harness.backends import capabilities, get_backend
    from harness.backends.model_files import check_model_files
    from harness.errors import HarnessError
    from harness.evaluation.spec import build_samples
    from harness.tasks import get_task
    from harness.tasks.base import check_seed

    get_backend(spec.backend)
    get_task(spec.task)
    check_seed(spec.seed)
    build_samples(spec)  # samples, data set layout and encoding, few-shot rows
    model = Path(str(spec.model)).expanduser()
    if model.is_dir():
        check_model_files(model)
    elif capabilities(spec.backend).needs_local_model:
        raise HarnessError(f"--model {spec.model!r} is not a directory; backend {spec.backend!r} needs a local "
                           "checkpoint directory")


def build_parser() -> argparse.ArgumentParser:
    """`check`'s own parser (prog ``python -m harness check``), so its usage errors exit 128."""
    parser = argparse.ArgumentParser(prog="python -m harness check", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser


def main(argv: list[str]) -> int:
    """`python -m harness check ARGS`: the whole command under git bisect run's protocol (see above)."""
    import traceback

    from harness.errors import HarnessError

    try:
        from harness.execution.worker import register_extra_backends

        register_extra_backends()  # the HARNESS_EXTRA_BACKENDS / _TASKS testing hook, as in every worker
        return run(build_parser().parse_args(argv))
    except SystemExit as exc:  # argparse: --help exits 0, a usage error already became 128 (add_arguments)
        return exc.code if isinstance(exc.code, int) else EXIT_ABORT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130  # > 127: git bisect run aborts
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ABORT
    except Exception as exc:  # noqa: BLE001 - a harness bug must not mark the commit bad (1)
        traceback.print_exc()
        print(f"error: the check command failed inside the harness ({type(exc).__name__}: {exc}); exit 128 so "
              "git bisect run aborts instead of blaming this commit", file=sys.stderr)
        return EXIT_ABORT


def run(args) -> int:
    import json

    from harness.errors import HarnessError

    try:
        spec, ref, samples = _prepare(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ABORT
    outcome = evaluate_and_judge(args, spec, ref, samples)
    if args.json:
        print(json.dumps(outcome, default=str))
    else:
        print("\n".join(outcome["lines"]))
    return outcome["exit_code"]


def evaluate_and_judge(args, spec, ref, samples) -> dict:
    """Evaluate at this engine commit and judge: the outcome dict (status, exit_code, lines, numbers)."""
    out = {"backend": spec.backend, "model": spec.model, "task": spec.task, "samples": samples,
           "reference": ref.to_dict() if ref else None}
    result = _evaluate(args, spec, out)
    if result is None:
        return out
    if result.status != "ok":
        return _unresolved(out, result)
    score = (result.metrics or {}).get("score")
    n = (result.metrics or {}).get("n", len(result.records))
    out.update(score=score, n=n)
    if ref is not None:
        good, threshold, lines = _judge_against_reference(out, ref, score, n, samples)
    else:
        threshold = args.threshold
        good = score >= threshold
        out.update(threshold=threshold)
        lines = [f"score {score:.3f} (n={n}), threshold {threshold:.3f}"]
    lines.append(f"{'GOOD (exit 0)' if good else 'BAD (exit 1)'}: score {score:.2f} "
                 f"{'>=' if good else '<'} threshold {threshold:.2f}")
    out.update(status="good" if good else "bad", exit_code=EXIT_GOOD if good else EXIT_BAD, lines=lines,
               cached=(result.info or {}).get("cached"))
    return out


def _evaluate(args, spec, out: dict):
    """The evaluation's result, or None with ``out`` filled in when the engine rejects the input."""
    from pathlib import Path

    from harness.errors import EngineInputError, HarnessError
    from harness.execution.runner import Runner
    from harness.execution.slurm import executor_options
    from harness.regress.suite_runner import resolve_backend_config

    ex_name, ex_opts, _ = executor_options(args)
    # the store, the executor (Slurm: sbatch, partition, submission) are the same at every commit: their
    # HarnessErrors propagate (128); only this commit's engine rejecting the input is untestable (125)
    with Runner(cache_dir=args.cache_dir, use_cache=args.cache, timeout=args.timeout, max_parallel=1, quiet=True,
                executor=ex_name, executor_options=ex_opts, workdir=Path(args.cache_dir) / "work") as runner:
        try:  # the resolved config is part of the engine at this commit (its default.yaml's knobs)
            spec.config = resolve_backend_config(spec.backend, spec.config)
        except HarnessError as exc:
            return _rejected(out, exc)
        try:
            return runner.evaluate(spec)
        except EngineInputError as exc:  # the worker: the engine at this commit rejects the input
            return _rejected(out, exc)


def _rejected(out: dict, exc: Exception) -> None:
    out.update(status="untestable", exit_code=EXIT_SKIP, error=str(exc),
               lines=[f"UNTESTABLE (exit 125): the engine rejected the input at this commit: {exc}"])
    return None


def _unresolved(out: dict, result) -> dict:
    """Crash, timeout or out of memory: untestable (125), with the log tail triaged."""
    from harness.analysis.triage import load_patterns, triage_text

    t = triage_text("\n".join(x for x in (result.error, result.log_tail) if x), load_patterns(), name="check")
    lines = [f"UNTESTABLE (exit 125): evaluation unresolved: {result.error}"]
    lines += ["  " + line for line in t.lines()[1:]]
    out.update(status="untestable", exit_code=EXIT_SKIP, error=result.error, triage=t.to_dict(), lines=lines)
    return out


def _judge_against_reference(out: dict, ref, score: float, n: int, samples) -> tuple[bool, float, list[str]]:
    """TensorRT-LLM's hypothesis test: (good, threshold, its report lines as accuracy_core prints them)."""
    from harness.regress.suite_runner import gate

    n_gate = samples or n  # TRT-LLM: HypothesisTestingParams(num_samples) is the requested count
    threshold, theta = gate(score, ref, n_gate)
    good = score >= threshold if ref.higher_is_better else score <= threshold
    out.update(threshold=threshold, theta=theta)
    lines = ["=" * 59, f"= {ref.metric_name.upper()} HYPOTHESIS TESTING (TensorRT-LLM accuracy_core)", "=" * 59,
             f"Alpha (Type I:  False Positive): {ref.alpha:.3f}", f"Beta  (Type II: False Negative): {ref.beta:.3f}",
             f"Sigma (Standard deviation): {ref.sigma:.3f}", f"#Samples: {n_gate}",
             f"Higher is better: {ref.higher_is_better}", f"Theta (Minimum detectable effect): {theta:.3f}",
             f"Reference {ref.metric_name}: {ref.accuracy:.3f}  ({ref.source})", f"Threshold: {threshold:.3f}",
             f"Evaluated {ref.metric_name}: {score:.3f}  (n={n})", "=" * 59]
    return good, threshold, lines
