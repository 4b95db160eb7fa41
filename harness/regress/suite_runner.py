"""Run a regression suite: evaluate every job (and its paired reference run), judge, and write outputs.

    outcome = run_suite(suite, out_dir, runner, history_db=..., bisect_on_fail=False)

Per job: the candidate evaluation goes through ``harness.execution.runner.Runner`` (cached, isolated worker
process, concurrent up to --max-parallel, local or Slurm executor); a paired reference run (e.g.
``hf``) on the same samples is evaluated once and shared by every config that pairs with it.
Pass/fail is TensorRT-LLM's hypothesis test (``harness.comparison.stats.trtllm_threshold`` with the matched
reference entry's sigma/alpha) and, where paired, ``harness.comparison.verdict.compare_runs``'s verdict.
Outputs in ``out_dir``: junit.xml, summary.md, summary.json, jobs/<job>/ (result.json, config.yaml,
candidate/ and reference/ samples.jsonl), and rows in the history database.
"""
from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness.evaluation.spec import EvalResult, EvalSpec
from harness.regress.jobs import Job, JobResult, judge
from harness.comparison.references import Reference, find_reference, lookup
from harness.regress.suite import Suite

EXIT_OK, EXIT_REGRESSION, EXIT_UNRESOLVED = 0, 1, 3


@dataclass
class SuiteOutcome:
    suite: str
    run_id: str
    out_dir: str
    results: list[JobResult]
    started_at: str
    finished_at: str
    versions: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    runner_stats: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if any(r.status == "failed" for r in self.results):
            return EXIT_REGRESSION
        if any(r.status == "error" for r in self.results):
            return EXIT_UNRESOLVED
        return EXIT_OK

    def counts(self) -> dict:
        return {s: sum(r.status == s for r in self.results) for s in ("passed", "failed", "error", "skipped")}


def job_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "__", name)


# -- specs --------------------------------------------------------------------------------------

def resolve_backend_config(backend_name: str, overlay: dict) -> dict:
    """The config a backend runs with for ``overlay``: for backends that take AD configs, the
    overlay resolved against the backend's default.yaml (as the evaluation cache keys it); for the
    others the overlay as given. Raises HarnessError when the overlay names unknown keys."""
    from harness.backends import get_backend
    from harness.evaluation.key import resolved_config

    backend = get_backend(backend_name)
    return resolved_config(EvalSpec(backend=backend_name, model="", config=overlay), backend)


def candidate_spec(job: Job) -> EvalSpec:
    return EvalSpec(backend=job.backend, model=job.model_path, task=job.task,
                    config=resolve_backend_config(job.backend, job.config),
                    dataset=job.dataset, samples=job.samples, seed=job.seed, prompt_options=dict(job.prompt_options),
                    sampling=dict(job.sampling), plugins=list(job.plugins), label=f"{job.name} [candidate]")


def paired_spec(job: Job) -> EvalSpec | None:
    if not job.paired_backend:
        return None
    return EvalSpec(backend=job.paired_backend, model=job.model_path, task=job.task,
                    config=resolve_backend_config(job.paired_backend, job.paired_config), dataset=job.dataset,
                    samples=job.samples, seed=job.seed, prompt_options=dict(job.prompt_options),
                    sampling=dict(job.sampling),
                    label=f"{job.model_id}/{job.task}/n{job.samples or 'all'} [reference {job.paired_backend}]")


def job_reference(job: Job) -> Reference | None:
    """The reference entry of a job (inline score wins over the reference YAML); None if paired-only."""
    if job.reference_score is not None:
        entry = {"accuracy": job.reference_score, **job.reference_overrides}
        return lookup({job.model_id: [entry]}, job.model_id, job.task, {}, source="suite (inline reference_score)",
                      no_reference=False)
    if job.references:
        return find_reference(job.references, job.model_id, job.task, job.spec)
    return None


def gate(score: float, ref: Reference, n: int) -> tuple[float, float]:
    """(threshold, theta) of TensorRT-LLM's test for n samples (HypothesisTestingParams in
    NVIDIA/TensorRT-LLM tests/integration/defs/accuracy/accuracy_core.py@3e906a0e)."""
    from harness.comparison.stats import trtllm_theta, trtllm_threshold

    threshold = trtllm_threshold(n, ref.accuracy, sigma=ref.sigma, alpha=ref.alpha,
                                 higher_is_better=ref.higher_is_better)
    theta = trtllm_theta(n, sigma=ref.sigma, alpha=ref.alpha, beta=ref.beta)
    return threshold, theta


def _pick(d: dict, *names):
    for n in names:
        if d.get(n) is not None:
            return d[n]
    return None


def paired_summary(job: Job, ref_result: EvalResult, cand_result: EvalResult) -> dict:
    """compare_runs on the paired records -> the fields the reports need (+ the full comparison)."""
    from harness.comparison.verdict import VerdictOptions, compare_runs

    out = {"backend": job.paired_backend, "score": (ref_result.metrics or {}).get("score"),
           "status": ref_result.status}
    if ref_result.status != "ok":
        out["verdict"] = "unresolved"
        out["error"] = ref_result.error
        return out
    if cand_result.status != "ok":
        out["verdict"] = "unresolved"
        return out
    cmp = compare_runs(ref_result.records, cand_result.records, options=VerdictOptions(alpha=job.paired_alpha))
    d = cmp.to_dict() if hasattr(cmp, "to_dict") else dict(vars(cmp))
    out["verdict"] = cmp.verdict
    acc = d.get("accuracy") or {}
    out["delta"] = _pick(acc, "diff_points")
    if out["delta"] is None and out["score"] is not None and (cand_result.metrics or {}).get("score") is not None:
        out["delta"] = cand_result.metrics["score"] - out["score"]
    out["p_value"] = _pick(d.get("mcnemar") or {}, "p_two_sided")
    out["evidence"] = d.get("evidence")
    out["differs"] = d.get("differs")
    out["summary"] = list(cmp.summary_lines()) if hasattr(cmp, "summary_lines") else []
    out["comparison"] = d
    return out


# -- versions -----------------------------------------------------------------------------------

def git_commit(path: Path) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(path), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip() or None if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def job_versions(backend_name: str, result: EvalResult) -> dict:
    from harness import __version__
    from harness.backends import get_backend

    out = {"harness": __version__}
    try:
        out.update({k: v for k, v in get_backend(backend_name).version_key().items() if v is not None})
    except Exception:  # noqa: BLE001 - versions are informative only
        pass
    info = result.info or {}
    for k in ("torch", "transformers", "tensorrt_llm", "engine_version", "emulator_version"):
        if info.get(k):
            out[k] = str(info[k])
    if isinstance(info.get("versions"), dict):
        out.update({k: str(v) for k, v in info["versions"].items() if v is not None})
    return out


# -- bisect on fail -----------------------------------------------------------------------------

def bisect_command(job: Job, config_file: Path, out: Path, cache_dir: str | None, executor_argv: list[str],
                   timeout: float | None = None, ref_score: float | None = None) -> list[str]:
    """argv of `python -m harness bisect` for a job, with the suite's executor flags (bisect takes the same
    ones, harness/execution/slurm.py add_executor_arguments). Not --quiet: its progress lines go to
    bisect.log and, unless regress is quiet, to the console."""
    wanted = [("--model", job.model_path), ("--task", job.task), ("--config", str(config_file)),
              ("--backend", job.backend), ("--backend-ref", job.paired_backend),
              ("--samples", None if job.samples is None else str(job.samples)), ("--dataset", job.dataset),
              ("--seed", str(job.seed)), ("--out", str(out)), ("--cache-dir", cache_dir),
              # the matched reference entry's score (bisect looks references up by model path, not by the
              # suite's model id, so the suite resolves it)
              ("--reference-score", None if ref_score is None else f"{ref_score:g}"),
              ("--timeout", None if timeout is None else str(timeout))]
    wanted += [("--plugin", p) for p in job.plugins]
    argv = [sys.executable, "-m", "harness", "bisect"]
    for flag, value in wanted:
        if value is not None:
            argv += [flag, value]
    return argv + list(executor_argv)


def find_report(out: Path) -> Path | None:
    for name in ("report.md", "report.html", "summary.json"):
        hits = sorted(out.rglob(name))
        if hits:
            return hits[0]
    return None


def bisect_finding(out: Path) -> dict | None:
    """What the bisect under ``out`` found, from its summary.json (harness/bisect/report/SCHEMA.md):
    verdict, outcome, headline, the culprit groups and one line naming them."""
    hits = sorted(out.rglob("summary.json"))
    if not hits:
        return None
    try:
        s = json.loads(hits[0].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    groups = [{"knobs": list(c.get("knobs") or []), "confirmed": c.get("confirmed"), "with": c.get("with") or [],
               "kind": c.get("kind")} for c in s.get("culprits") or []]
    return {"verdict": s.get("verdict"), "outcome": s.get("outcome"), "headline": s.get("headline"),
            "culprits": groups, "culprit": culprit_line(groups, s.get("outcome"), s.get("headline")),
            "summary": str(hits[0])}


def culprit_line(groups: list[dict], outcome: str | None, headline: str | None) -> str:
    """``culprit: optimize_rope (confirmed)``; a pair: ``culprit: fuse_a + fuse_b (only together, ...)``;
    no culprit: the bisect's outcome and headline."""
    if not groups:
        return f"no culprit ({outcome or 'no outcome'}): {headline or ''}".rstrip(": ")
    parts = []
    for g in groups:
        notes = (["only together"] if len(g["knobs"]) > 1 else []) + (
            [f"with {', '.join(g['with'])}"] if g.get("with") else []) + (
            ["confirmed" if g.get("confirmed") else "not confirmed"])
        parts.append(f"{' + '.join(g['knobs'])} ({', '.join(notes)})")
    return ("culprit: " if len(parts) == 1 else "culprits: ") + "; ".join(parts)


def run_bisect(job: Job, result: JobResult, out_dir: Path, cache_dir: str | None, executor_argv: list[str],
               timeout: float | None, eval_timeout: float | None = None, log=None) -> None:
    """Run `python -m harness bisect` for a failing AD job; record its report, what it found, or why not.
    Its output goes to bisect/<job>/bisect.log and, line by line, to ``log`` (the console)."""
    jdir = out_dir / "jobs" / job_slug(job.name)
    bdir = out_dir / "bisect" / job_slug(job.name)
    ref_score = (result.reference or {}).get("accuracy", job.reference_score)
    argv = bisect_command(job, jdir / "config.yaml", bdir, cache_dir, executor_argv, eval_timeout,
                          ref_score=ref_score)
    bdir.mkdir(parents=True, exist_ok=True)
    (bdir / "command.txt").write_text(" ".join(argv) + "\n")
    log_path = bdir / "bisect.log"
    t0 = time.monotonic()
    rc = _stream(argv, log_path, timeout, (lambda line: log(f"  bisect | {line}")) if log else None)
    report = find_report(bdir)
    result.bisect_report = str(report) if report else None
    result.bisect = bisect_finding(bdir)
    result.bisect_status = (f"bisect exit {rc} in {time.monotonic() - t0:.0f} s" if rc is not None
                            else f"bisect timed out after {timeout} s") + ("" if report else f"; no report, see {log_path}")


def _stream(argv: list[str], log_path: Path, timeout: float | None, echo) -> int | None:
    """Run ``argv``; every output line to ``log_path`` and to ``echo``. The exit code, or None on timeout."""
    import threading

    with open(log_path, "w", encoding="utf-8", errors="replace") as f:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, errors="replace", bufsize=1)

        def pump():
            for line in proc.stdout:
                f.write(line)
                f.flush()
                if echo is not None:
                    echo(line.rstrip("\n"))

        reader = threading.Thread(target=pump, name="harness-bisect-log", daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
        reader.join(timeout=10)
    return rc


# -- the run ------------------------------------------------------------------------------------

def run_suite(suite: Suite, out_dir: str | Path, runner, history_db: str | Path | None = None,
              bisect_on_fail: bool = False, executor_argv: list[str] | None = None,
              bisect_timeout: float | None = None, log=print) -> SuiteOutcome:
    """Evaluate every job (and its paired reference run), judge, bisect failures if asked, write outputs."""
    from harness.analysis.triage import load_patterns

    run = _prepare(suite, Path(out_dir))
    _evaluate(run, runner, log)
    patterns = load_patterns()
    run.results = [_judge_job(run, j, patterns) for j in suite.jobs]
    if bisect_on_fail:
        _bisect_failures(run, runner, executor_argv or [], bisect_timeout, log)
    return _write_outputs(run, runner, history_db)


@dataclass
class _SuiteRun:
    """State handed from one step of run_suite to the next."""
    suite: Suite
    out_dir: Path
    started: datetime
    run_id: str
    refs: dict  # job name -> Reference | None
    cand_specs: dict  # job name -> EvalSpec
    pair_specs: dict  # job name -> EvalSpec | None
    evals: dict = field(default_factory=dict)  # (job name, "cand" | "ref") -> EvalResult
    results: list[JobResult] = field(default_factory=list)  # in suite.jobs order


def _prepare(suite: Suite, out_dir: Path) -> _SuiteRun:
    out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc).replace(microsecond=0)
    # a short random suffix: two runs started within the same second (a fast cached rerun) must not
    # share an id, or the second would replace the first one's history rows
    run_id = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}-{job_slug(suite.name)}"
    # references first: a reference that is not registered is the user's to fix, before hours of runs
    refs = {j.name: job_reference(j) for j in suite.jobs}
    cand_specs = {j.name: candidate_spec(j) for j in suite.jobs}
    pair_specs = {j.name: paired_spec(j) for j in suite.jobs}
    return _SuiteRun(suite, out_dir, started, run_id, refs, cand_specs, pair_specs)


def _evaluate(run: _SuiteRun, runner, log) -> None:
    """All candidate and paired evaluations in one batch (the runner caches and deduplicates)."""
    jobs = run.suite.jobs
    ordered = []
    for j in jobs:
        ordered.append(run.cand_specs[j.name])
        if run.pair_specs[j.name] is not None:
            ordered.append(run.pair_specs[j.name])
    log(f"suite {run.suite.name}: {len(jobs)} job(s), {len(ordered)} evaluation(s) before cache/dedup; "
        f"out {run.out_dir}")
    t0 = time.monotonic()
    if hasattr(runner, "plan"):
        runner.plan(len(ordered))  # every call counts once in the progress line, cached or not
    results = runner.evaluate_many(ordered)
    it = iter(results)
    for j in jobs:
        run.evals[(j.name, "cand")] = next(it)
        if run.pair_specs[j.name] is not None:
            run.evals[(j.name, "ref")] = next(it)
    log(f"evaluations done in {time.monotonic() - t0:.1f} s")


def _judge_job(run: _SuiteRun, j: Job, patterns) -> JobResult:
    """One job's result: records written, paired comparison, TensorRT-LLM gate, pass/fail."""
    cand = run.evals[(j.name, "cand")]
    ref_eval = run.evals.get((j.name, "ref"))
    ref = run.refs[j.name]
    r = _new_result(run, j, cand, ref_eval, ref)
    jdir = Path(r.result_dir)
    _take_candidate(r, j, cand, jdir, patterns)
    if ref_eval is not None:
        _take_paired(r, j, cand, ref_eval, jdir, patterns)
    if ref is not None and r.score is not None:
        # TRT-LLM's gate uses the hypothesis num_samples it evaluated with (the job's sample count)
        n_gate = j.samples or r.n or ref.num_samples
        r.threshold, r.theta = gate(r.score, ref, n_gate)
        r.gate_passed = (r.score >= r.threshold) if ref.higher_is_better else (r.score <= r.threshold)
    r.status, r.messages = judge(r.score, r.threshold, ref.higher_is_better if ref else True,
                                 (r.paired or {}).get("verdict"), cand.status != "ok",
                                 ref_eval is not None and ref_eval.status != "ok")
    return r


def _new_result(run: _SuiteRun, j: Job, cand: EvalResult, ref_eval: EvalResult | None,
                ref: Reference | None) -> JobResult:
    """The job directory (with its config.yaml) and a JobResult with what is known before judging."""
    from harness.config.io import dump_yaml
    from harness.config.ops import config_hash

    jdir = run.out_dir / "jobs" / job_slug(j.name)
    jdir.mkdir(parents=True, exist_ok=True)
    (jdir / "config.yaml").write_text(dump_yaml(j.config or {}))
    return JobResult(job=j.to_dict(), status="passed", result_dir=str(jdir),
                     config_hash=config_hash(run.cand_specs[j.name].config),
                     versions=job_versions(j.backend, cand), reference=ref.to_dict() if ref else None,
                     duration_s=float((cand.info or {}).get("wall_s") or 0.0) +
                     float(((ref_eval.info if ref_eval else None) or {}).get("wall_s") or 0.0),
                     cache_hit=(cand.info or {}).get("cached"), executor=(cand.info or {}).get("executor"))


def _take_candidate(r: JobResult, j: Job, cand: EvalResult, jdir: Path, patterns) -> None:
    """Score and records of the candidate run, or its error triaged."""
    from harness.evaluation.records import write_records
    from harness.analysis.triage import triage_text

    if cand.status == "ok":
        r.score = (cand.metrics or {}).get("score")
        r.n = (cand.metrics or {}).get("n", len(cand.records))
        _mkdir(jdir / "candidate")
        write_records(jdir / "candidate" / "samples.jsonl", cand.records)
    else:
        r.error, r.log_tail = cand.error, cand.log_tail
        r.triage = triage_text("\n".join(x for x in (cand.error, cand.log_tail) if x), patterns,
                               name=j.name).to_dict()


def _take_paired(r: JobResult, j: Job, cand: EvalResult, ref_eval: EvalResult, jdir: Path, patterns) -> None:
    """Records of the paired reference run (or its error, when the candidate ran) and the paired verdict."""
    from harness.evaluation.records import write_records
    from harness.analysis.triage import triage_text

    if ref_eval.status == "ok":
        _mkdir(jdir / "reference")
        write_records(jdir / "reference" / "samples.jsonl", ref_eval.records)
    elif cand.status == "ok":
        r.error, r.log_tail = f"paired reference ({j.paired_backend}): {ref_eval.error}", ref_eval.log_tail
        r.triage = triage_text("\n".join(x for x in (ref_eval.error, ref_eval.log_tail) if x), patterns,
                               name=j.name).to_dict()
    r.paired = paired_summary(j, ref_eval, cand)


def _bisect_failures(run: _SuiteRun, runner, executor_argv: list[str], bisect_timeout: float | None,
                     log, stream_bisect: bool = True) -> None:
    """`bisect` for every failed job whose backend takes AD configs (and that did not opt out)."""
    from harness.backends import get_backend

    progress = getattr(runner, "progress", None)
    if progress is not None and any(r.status == "failed" for r in run.results):
        progress.close()  # the evaluations are done; the bisects' lines follow
    for j, r in zip(run.suite.jobs, run.results):
        if r.status != "failed":
            continue
        if not j.bisect or not getattr(get_backend(j.backend), "takes_ad_config", False):
            r.bisect_status = "not bisected (backend takes no AD config or bisect: false)"
            continue
        log(f"bisect: {j.name} ...")
        run_bisect(j, r, run.out_dir, str(getattr(runner, "cache_dir", "")) or None, executor_argv,
                   bisect_timeout, eval_timeout=getattr(getattr(runner, "executor", None), "timeout", None),
                   log=log if stream_bisect else None)
        found = (r.bisect or {}).get("culprit") or "no summary"
        log(f"bisect: {j.name}: {found}; {r.bisect_status}; report {r.bisect_report}")


def _write_outputs(run: _SuiteRun, runner, history_db: str | Path | None) -> SuiteOutcome:
    """result.json per job, junit.xml, summary.md/json and the history rows."""
    from harness.regress.junit import write_junit
    from harness.regress.summary import write_summary

    for r in run.results:
        (Path(r.result_dir) / "result.json").write_text(json.dumps(r.to_dict(), indent=1, default=str))
    finished = datetime.now(timezone.utc).replace(microsecond=0)
    run_versions = _run_versions(run.results)
    outcome = SuiteOutcome(suite=run.suite.name, run_id=run.run_id, out_dir=str(run.out_dir), results=run.results,
                           started_at=run.started.isoformat(), finished_at=finished.isoformat(),
                           versions={k: v for k, v in run_versions.items() if v is not None},
                           runner_stats=dict(getattr(runner, "stats", {}) or {}))
    outcome.files["junit"] = write_junit(run.out_dir / "junit.xml", run.suite.name, run.results,
                                         versions=outcome.versions, timestamp=run.started)
    outcome.files.update(write_summary(outcome, run.out_dir))
    if history_db:
        _record_history(history_db, outcome, run_versions.get("harness_commit"))
    return outcome


def _run_versions(results: list[JobResult]) -> dict:
    """The harness version and commit, then the first value of every key the jobs report."""
    from harness import __version__
    from harness.paths import REPO_ROOT

    run_versions = {"harness": __version__, "harness_commit": git_commit(REPO_ROOT)}
    for r in results:
        for k, v in r.versions.items():
            run_versions.setdefault(k, v)
    return run_versions


def _record_history(history_db: str | Path, outcome: SuiteOutcome, harness_commit: str | None) -> None:
    from harness.regress.history import record_run

    record_run(history_db, {"run_id": outcome.run_id, "suite": outcome.suite, "started_at": outcome.started_at,
                            "finished_at": outcome.finished_at, "host": socket.gethostname(),
                            "git_commit": harness_commit, "versions": outcome.versions,
                            "out_dir": outcome.out_dir, "exit_code": outcome.exit_code}, outcome.results)
    outcome.files["history"] = str(history_db)


def _mkdir(p: Path) -> bool:
    p.mkdir(parents=True, exist_ok=True)
    return True


def check_references(suite: Suite) -> None:
    """Raise HarnessError for the first job whose reference cannot be looked up (dry check)."""
    for j in suite.jobs:
        job_reference(j)


__all__ = ["run_suite", "SuiteOutcome", "check_references", "candidate_spec", "paired_spec", "job_reference",
           "gate", "resolve_backend_config", "EXIT_OK", "EXIT_REGRESSION", "EXIT_UNRESOLVED"]
