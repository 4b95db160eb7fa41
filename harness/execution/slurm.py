"""Slurm executor through submitit: each evaluation is one Slurm job running the SAME worker entry
point as the local executor (``python -m harness worker --spec spec.json --out result.json``).

    python -m harness regress --suite configs/nightly.yaml --executor slurm \
        --partition debug --gpus 1 --time 60 --account myproj --max-parallel 8

The submitit job function (``_job_main``) starts the worker as a child process in its own process
group, enforces the harness --timeout, and returns the exit code; the orchestrator then reads
``result.json`` / ``worker.log`` with ``harness.execution.executor.read_worker_result`` exactly as the local
executor does, so a crash, an OOM kill or a timeout is ``unresolved`` with the log tail, and bad
input (worker exit 2) is a HarnessError. A job that leaves the Slurm queue without a result (the
Slurm time limit, a node failure, scancel) is ``unresolved`` with Slurm's own stderr (which carries
"CANCELLED ... DUE TO TIME LIMIT" for `triage`). Work directories must be on a file system the
nodes share (they are under --cache-dir).

Independent evaluations run concurrently: the Runner calls ``run`` from up to --max-parallel
threads, each one submits a job and waits for it. Each job asks for the GPUs its evaluation needs:
--gpus, raised to the config's ``world_size`` for the TensorRT-LLM backends (``gpus_for``).
``--slurm-cluster local|debug`` runs the same path through submitit's local / in-process executors
(tests, no Slurm needed).

submitit is optional: ``pip install submitit`` (or ``pip install harness[slurm]``).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from harness.backends import capabilities
from harness.errors import HarnessError
from harness.evaluation.spec import EvalResult, EvalSpec
from harness.execution.executor import Executor, LocalExecutor, log_tail, read_worker_result, worker_command
from harness.jsonio import write_json_atomic
from harness.paths import REPO_ROOT

INSTALL_HINT = "the slurm executor needs submitit: pip install submitit (or pip install 'harness[slurm]')"
CLUSTERS = ("slurm", "local", "debug")


def require_submitit():
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise HarnessError(INSTALL_HINT) from None
    return submitit


def parse_time_minutes(value) -> int | None:
    """Slurm --time as whole minutes. Slurm's formats: "M", "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S"."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(1, int(value))
    s = str(value).strip()
    if not re.fullmatch(r"(\d+-)?\d+(:\d+){0,2}", s):
        raise HarnessError(f"--time {value!r} is not a Slurm time; use minutes (90), H:M:S or D-H:M:S")
    days, h, m, sec = 0, 0, 0, 0
    if "-" in s:
        d, rest = s.split("-", 1)
        days = int(d)
        parts = [int(x) for x in rest.split(":")] + [0, 0]
        h, m, sec = parts[0], parts[1], parts[2]
    else:
        parts = [int(x) for x in s.split(":")]
        if len(parts) == 1:
            m = parts[0]
        elif len(parts) == 2:
            m, sec = parts
        else:
            h, m, sec = parts
    return max(1, days * 1440 + h * 60 + m + (1 if sec else 0))


# -- runs on the compute node ------------------------------------------------------------------

def _job_main(argv: list[str], env: dict, log_path: str, timeout: float | None) -> dict:
    """The submitit job: run the worker as a child, enforce the timeout, report what happened."""
    env = dict(env)
    env["HARNESS_PARENT_PID"] = str(os.getpid())  # the worker dies with this job process
    env["HARNESS_LAUNCH_TIME"] = repr(time.time())
    t0 = time.monotonic()
    timed_out = None
    with open(log_path, "ab") as logf:
        logf.write(f"[harness slurm] host {socket.gethostname()} job {os.environ.get('SLURM_JOB_ID', '-')}\n".encode())
        logf.flush()
        proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = timeout
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    proc.wait(timeout=5)
                    break
                except subprocess.TimeoutExpired:
                    continue
            rc = proc.wait()
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # stragglers in the worker's group
            except (ProcessLookupError, PermissionError):
                pass
    return {"returncode": rc, "timed_out": timed_out, "host": socket.gethostname(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "wall_s": round(time.monotonic() - t0, 3)}


# -- runs in the orchestrator ------------------------------------------------------------------

def _squeue_state(job_id: str) -> str | None:
    """Job state from squeue ('' when the job is no longer in the queue, None when squeue fails)."""
    try:
        r = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return "" if "Invalid job id" in r.stderr else None
    return r.stdout.strip()


def _scontrol_state(job_id: str) -> str | None:
    """Final JobState/Reason from scontrol (works without accounting while the job record lives)."""
    try:
        r = subprocess.run(["scontrol", "show", "job", str(job_id)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"JobState=(\S+)(?:\s+Reason=(\S+))?", r.stdout)
    if not m:
        return None
    return m.group(1) + (f" (reason {m.group(2)})" if m.group(2) and m.group(2) != "None" else "")


def pythonpath_export(root) -> str:
    """The sbatch script line that puts the harness first on PYTHONPATH; the path is shell-quoted (a space,
    a quote or ``$(...)`` in it stays part of the path)."""
    import shlex

    return f"export PYTHONPATH={shlex.quote(str(root))}${{PYTHONPATH:+:$PYTHONPATH}}"


class SlurmExecutor(Executor):
    """One Slurm job per evaluation via submitit, same worker entry point as LocalExecutor."""

    name = "slurm"

    def __init__(self, timeout=1800, max_parallel=1, partition: str | None = None, gpus: int | None = None,
                 time=None, account: str | None = None, cpus: int | None = None, mem_gb: float | None = None,
                 cluster: str = "slurm", python: str | None = None, poll_s: float = 2.0,
                 setup: list[str] | None = None, **options):
        super().__init__(timeout, max_parallel, **options)
        require_submitit()
        if cluster not in CLUSTERS:
            raise HarnessError(f"unknown submitit cluster {cluster!r}; valid: {', '.join(CLUSTERS)}")
        if cluster == "slurm" and not shutil.which("sbatch"):
            raise HarnessError("--executor slurm: sbatch is not on PATH; run on a Slurm login node, start a local "
                               "Slurm with scripts/slurm_local.sh, or use --slurm-cluster local to test without Slurm")
        self.partition, self.gpus, self.account = partition, gpus, account
        self.cpus, self.mem_gb, self.cluster = cpus, mem_gb, cluster
        self.python = python or sys.executable
        self.poll_s = poll_s
        self.setup = list(setup or [])
        # the Slurm wall-clock limit: --time, else the harness timeout + 5 minutes for loading
        self.time_min = parse_time_minutes(time) or (
            max(1, int((timeout or 3600) // 60) + 5))

    def resolve_parallel(self, value) -> int:
        if value == "auto":
            raise HarnessError("--max-parallel auto fills a local machine; with --executor slurm give the number of "
                               "jobs to keep in flight, e.g. --max-parallel 8")
        return super().resolve_parallel(value)

    def gpus_for(self, spec: EvalSpec) -> int:
        """GPUs of the job: --gpus, raised to what the evaluation cannot run without (``world_size`` for
        TensorRT-LLM, ``Backend.gpus_required``)."""
        return max(int(self.gpus or 0), capabilities(spec.backend).gpus_required(spec.config))

    def _executor(self, folder: Path, gpus: int = 0):
        import submitit

        ex = submitit.AutoExecutor(folder=str(folder), cluster=self.cluster)
        params = {"timeout_min": self.time_min, "name": "harness-eval", "nodes": 1, "tasks_per_node": 1}
        if gpus:
            params["gpus_per_node"] = int(gpus)
        if self.cpus:
            params["cpus_per_task"] = int(self.cpus)
        if self.mem_gb:
            params["mem_gb"] = float(self.mem_gb)
        if self.cluster == "slurm":
            if self.partition:
                params["slurm_partition"] = self.partition
            if self.account:
                params["slurm_account"] = self.account
            params["slurm_setup"] = [pythonpath_export(REPO_ROOT)] + self.setup
        ex.update_parameters(**params)
        return ex

    def run(self, spec: EvalSpec, workdir: Path, harness_env: dict | None = None) -> EvalResult:
        from harness.execution.envscrub import worker_env

        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        spec_path, out_path, log_path = workdir / "spec.json", workdir / "result.json", workdir / "worker.log"
        out_path.unlink(missing_ok=True)
        log_path.unlink(missing_ok=True)
        write_json_atomic(spec_path, spec.to_dict())
        env, removed = worker_env(harness_set=harness_env, threads=self.cpus, offline=Path(spec.model).expanduser().exists(),
                                  torch_threads=capabilities(spec.backend).cpu_threads)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        argv = worker_command(spec_path, out_path, self.python)
        t0 = time.monotonic()
        gpus = self.gpus_for(spec)
        ex = self._executor(workdir / "submitit", gpus)
        try:
            job = ex.submit(_job_main, argv, env, str(log_path), self.timeout)
        except Exception as exc:  # noqa: BLE001 - sbatch refused (partition, account, ...): the user's to fix
            raise HarnessError(f"Slurm submission failed: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}"
                               ". Check --partition/--account/--gpus/--time (sinfo lists partitions)") from None
        job_id = str(job.job_id)
        outcome, info, error = self._wait(job)
        wall = time.monotonic() - t0
        if outcome == "ok":
            result = read_worker_result(info["returncode"], out_path, log_path, timed_out=info.get("timed_out"))
        else:
            tail = "\n".join(x for x in (log_tail(log_path), self._job_stderr(job)) if x)
            result = EvalResult(status="unresolved", error=error, log_tail=tail)
        result.info = dict(result.info or {})
        result.info["env_scrubbed"] = removed
        result.info["executor"] = {
            "name": self.name, "cluster": self.cluster, "slurm_job_id": job_id,
            "host": (info or {}).get("host"), "returncode": (info or {}).get("returncode"),
            "wall_s": round(wall, 3), "job_wall_s": (info or {}).get("wall_s"), "worker_log": str(log_path),
            "partition": self.partition, "gpus": gpus, "time_min": self.time_min, "account": self.account,
        }
        return result

    def _job_stderr(self, job) -> str:
        try:
            return "\n".join((job.stderr() or "").splitlines()[-40:])
        except Exception:  # noqa: BLE001
            return ""

    def _wait(self, job) -> tuple[str, dict | None, str | None]:
        """('ok', job result dict, None) or ('lost', None, why)."""
        from submitit.core.utils import FailedJobError, UncompletedJobError

        gone = 0
        while True:
            # Slurm: look for the result file ourselves; job.done() polls sacct, which fails loudly
            # where accounting is disabled (the single-node setup) and never sees a lost job.
            if (job.paths.result_pickle.exists() if self.cluster == "slurm" else job.done()):
                break
            if self.cluster == "slurm":
                state = _squeue_state(job.job_id)
                gone = gone + 1 if state == "" else 0
                if gone >= 3 and not job.paths.result_pickle.exists():  # left the queue, no result (time limit, node failure, scancel)
                    final = _scontrol_state(job.job_id) or "unknown state"
                    return "lost", None, (f"Slurm job {job.job_id} ended without a result: {final}"
                                          + (" - hit the Slurm time limit (raise --time)" if "TIMEOUT" in final else ""))
            time.sleep(self.poll_s)
        try:
            return "ok", job.result(), None
        except (FailedJobError, UncompletedJobError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return "lost", None, f"Slurm job {job.job_id} failed: {first}"


# -- CLI helpers shared by regress (and bisect, when it wants them) -----------------------------

def add_executor_arguments(p) -> None:
    g = p.add_argument_group("execution (local worker processes, or Slurm through submitit)")
    g.add_argument("--executor", default="local", choices=("local", "slurm", "inprocess"),
                   help="where evaluations run (default local: a fresh worker process each)")
    g.add_argument("--partition", default=None, help="Slurm partition (--executor slurm)")
    g.add_argument("--gpus", type=int, default=None, help="GPUs per Slurm job (--executor slurm)")
    g.add_argument("--time", default=None, help="Slurm time limit per job: minutes or HH:MM:SS "
                                                "(default: --timeout + 5 min)")
    g.add_argument("--account", default=None, help="Slurm account (--executor slurm)")
    g.add_argument("--cpus", type=int, default=None, help="CPUs per Slurm job (--executor slurm)")
    g.add_argument("--mem-gb", type=float, default=None, help="host memory per Slurm job in GB (--executor slurm)")
    g.add_argument("--slurm-cluster", default="slurm", choices=CLUSTERS,
                   help="submitit backend: slurm (sbatch), local or debug (testing without Slurm)")


def executor_options(args) -> tuple[str, dict, list[str]]:
    """(executor name, options for get_executor, argv to pass the same choice to a sub-command)."""
    name = getattr(args, "executor", "local") or "local"
    if name != "slurm":
        return name, {}, ["--executor", name]
    opts = {"partition": args.partition, "gpus": args.gpus, "time": args.time, "account": args.account,
            "cpus": args.cpus, "mem_gb": args.mem_gb, "cluster": args.slurm_cluster}
    opts = {k: v for k, v in opts.items() if v is not None}
    argv = ["--executor", "slurm"]
    for flag, key in (("--partition", "partition"), ("--gpus", "gpus"), ("--time", "time"), ("--account", "account"),
                      ("--cpus", "cpus"), ("--mem-gb", "mem_gb"), ("--slurm-cluster", "cluster")):
        if key in opts:
            argv += [flag, str(opts[key])]
    return name, opts, argv


__all__ = ["SlurmExecutor", "add_executor_arguments", "executor_options", "parse_time_minutes", "LocalExecutor"]
