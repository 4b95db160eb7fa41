"""Executors: run one evaluation spec and always come back with an EvalResult.

``LocalExecutor`` runs each evaluation in a fresh worker process
(``python -m harness.execution.worker --spec spec.json --out result.json``, the same command as
``python -m harness worker`` without building the whole CLI) in its own process group, with a
wall-clock timeout. A segfault, a non-zero exit, a SIGKILL from the OOM killer, a Python exception
outside ``run_evaluation`` or a hang becomes ``EvalResult(status="unresolved", error=<what
happened>, log_tail=<last lines of the worker's stdout+stderr>)`` — never an exception in the
orchestrator. The one exception: a worker that exits 2 because of bad input (a HarnessError, e.g.
an unknown transform name) makes ``run`` raise HarnessError with the worker's message, because bad
input is the user's to fix, not an engine result.

``InProcessExecutor`` calls ``run_evaluation`` in this process (fast tests, debugging; no timeout,
a segfault takes the orchestrator down with it).

Pluggable: ``EXECUTORS`` maps a name to a class or a ``"module:Class"`` string; every executor
takes ``(timeout, max_parallel, **options)`` and implements ``run(spec, workdir, harness_env)``.
A cluster executor (Slurm via submitit) reuses ``worker_command`` and ``read_worker_result``.

The worker's environment is scrubbed (``harness.execution.envscrub``) and what was removed is recorded in
``info["env_scrubbed"]``. The launcher is always plain ``python``: never torchrun (AD spawns its
own MPI workers; under torchrun it deadlocks — docs/method.md, Anti-patterns).
"""
from __future__ import annotations

import importlib
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from harness.backends import capabilities
from harness.execution.envscrub import worker_env
from harness.execution.slots import AUTO, Machine, Slot, SlotPool, auto_parallel, discover
from harness.errors import EngineInputError, HarnessError, one_of
from harness.evaluation.spec import EvalResult, EvalSpec
from harness.execution.worker import register_extra_backends
from harness.jsonio import write_json_atomic
from harness.paths import REPO_ROOT

LOG_TAIL_LINES = 60
KILL_GRACE_S = 5.0
HARNESS_ERROR_EXIT = 2  # HarnessError.exit_code


# -- helpers shared by executors ------------------------------------------------------------
def log_tail(path: str | Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


SIGNAL_HINTS = {
    "SIGKILL": " (killed from outside: often the kernel's out-of-memory killer)",
    "SIGSEGV": " (segmentation fault in native code)",
    "SIGABRT": " (aborted: a C++ assertion or std::terminate)",
    "SIGBUS": " (bus error)",
}


def last_exception_line(tail: str) -> str | None:
    for line in reversed(tail.splitlines()):
        s = line.strip()
        if s and not s.startswith(("File ", "^", "~")) and (":" in s and s.split(":")[0].replace(".", "").isidentifier()):
            return s[:300]
    return None


def describe_exit(returncode: int, tail: str) -> str:
    if returncode < 0:
        name = signal_name(-returncode)
        return f"worker killed by {name}{SIGNAL_HINTS.get(name, '')}"
    if returncode > 128 and returncode - 128 in {s.value for s in signal.Signals}:
        name = signal_name(returncode - 128)
        return f"worker exited with code {returncode} ({name}{SIGNAL_HINTS.get(name, '')})"
    msg = f"worker exited with code {returncode}"
    exc = last_exception_line(tail)
    return f"{msg}: {exc}" if exc else msg


def worker_command(spec_path: str | Path, out_path: str | Path, python: str | None = None) -> list[str]:
    """The worker entry point every executor launches (plain python: never torchrun).

    ``python -m harness.execution.worker`` is ``python -m harness worker`` without building the
    whole command table, so other command modules are never imported by a worker.
    """
    return [python or sys.executable, "-m", "harness.execution.worker", "--spec", str(spec_path), "--out", str(out_path)]


def read_worker_result(returncode: int | None, out_path: Path, log_path: Path, *, timed_out: float | None = None) -> EvalResult:
    """Turn what a finished (or killed) worker left behind into an EvalResult.

    Raises HarnessError when the worker reported bad input (exit 2 with a harness_error file or
    an ``error: ...`` line).
    """
    tail = log_tail(log_path)
    payload = None
    if out_path.is_file():
        try:
            payload = json.loads(out_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            payload = None
    if timed_out is not None:
        return EvalResult(status="unresolved", error=f"timeout after {timed_out:g} s (worker process group killed)",
                          log_tail=tail)
    if isinstance(payload, dict) and "harness_error" in payload:
        raise EngineInputError(payload["harness_error"])
    if returncode == HARNESS_ERROR_EXIT:
        for line in reversed(tail.splitlines()):
            if line.startswith("error: "):
                raise EngineInputError(line[len("error: "):])
    if returncode == 0 and isinstance(payload, dict) and "status" in payload:
        return EvalResult.from_dict(payload)
    if returncode == 0:
        return EvalResult(status="unresolved", error="worker exited 0 without writing a result", log_tail=tail)
    return EvalResult(status="unresolved", error=describe_exit(returncode if returncode is not None else -9, tail),
                      log_tail=tail)


def _kill_group(pgid: int, sig=signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_pid_group(pid: int, sig) -> None:
    """The group a worker leads, or the worker alone if it has not called setsid yet."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _is_local_model(model: str) -> bool:
    return Path(model).expanduser().exists()


# -- executors ------------------------------------------------------------------------------
class Executor:
    name = ""

    def __init__(self, timeout: float | None = 1800, max_parallel: int | str = 1, **options):
        self.timeout = timeout
        self.max_parallel = self.resolve_parallel(max_parallel)
        self.options = options

    def resolve_parallel(self, value: int | str) -> int:
        """``max_parallel`` as a number (``auto``: fill this machine, ``harness.execution.slots``)."""
        return auto_parallel(discover()) if value == AUTO else max(1, int(value))

    def capacity(self, spec: EvalSpec) -> int:
        """How many evaluations like ``spec`` run at once."""
        return self.max_parallel

    def run(self, spec: EvalSpec, workdir: Path, harness_env: dict | None = None) -> EvalResult:
        raise NotImplementedError

    def close(self) -> None:
        """Release long-lived resources (fork server, cluster handles)."""

    def prestart(self, specs: list[EvalSpec], workdir: Path) -> None:
        """Get ready for evaluations like ``specs`` ahead of the first one (nothing to do by default)."""


class ForkServerClient:
    """The orchestrator's end of one ``harness.execution.forkserver`` process (see that module)."""

    READY_TIMEOUT_S = 300.0

    def __init__(self, python: str, env: dict, log_path: Path, preload: list[str], warm: list[str] = ()):
        self.env = env
        self.ready = threading.Event()
        self.dead = False
        self.info: dict = {}
        self._pending: dict[str, queue.Queue] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._ids = itertools.count()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as logf:
            self.proc = subprocess.Popen([python, "-m", "harness.execution.forkserver", *preload,
                                          *(f"--warm={w}" for w in warm)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=logf, env=env, start_new_session=True)
        threading.Thread(target=self._read, name="harness-forkserver", daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("ready"):
                self.info = msg
                self.ready.set()
                continue
            with self._lock:
                q = self._pending.get(msg.get("id"))
            if q is not None:
                q.put(msg)
        with self._lock:
            self.dead = True
            for q in self._pending.values():
                q.put({"dead": True})
        self.ready.set()

    def submit(self, request: dict) -> tuple[str, queue.Queue] | None:
        """Send a request; None when the server is not usable (the caller falls back)."""
        if not self.ready.wait(self.READY_TIMEOUT_S) or self.dead:
            return None
        rid = str(next(self._ids))
        q: queue.Queue = queue.Queue()
        with self._lock:
            if self.dead:
                return None
            self._pending[rid] = q
        with self._write_lock:  # not under _lock: the reader thread must never wait on a writer
            try:
                self.proc.stdin.write((json.dumps({"id": rid, **request}) + "\n").encode("utf-8"))
                self.proc.stdin.flush()
            except (OSError, ValueError):
                self.forget(rid)
                return None
        return rid, q

    def forget(self, rid: str) -> None:
        with self._lock:
            self._pending.pop(rid, None)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# Variables read when modules are imported (sys.path, HF/transformers constants, torch/OpenMP
# init, the testing hooks): a request whose values differ from the server's is not forked (the
# child gets its full environment anyway; these are the ones a preloaded module may have cached).
IMPORT_TIME_ENV_PREFIXES = ("PYTHON", "HF_", "HUGGINGFACE", "TRANSFORMERS", "TORCH", "TOKENIZERS", "LD_", "OMP_",
                            "MKL_", "OPENBLAS", "KMP_", "CUDA", "NVIDIA", "XDG_CACHE_HOME", "HOME",
                            "HARNESS_EXTRA_")


def import_time_env(env: dict) -> dict:
    return {k: v for k, v in env.items() if k.upper().startswith(IMPORT_TIME_ENV_PREFIXES)}


def _without(env: dict, keys) -> dict:
    return {k: v for k, v in env.items() if k not in keys}


class LocalExecutor(Executor):
    """A fresh worker process per evaluation: forked from a preloaded fork server when possible
    (``harness.execution.forkserver``), else ``python -m harness.execution.worker``.

    Every worker runs in its own resource slot (``harness.execution.slots``): the GPUs its backend
    occupies, disjoint from every other running worker's, and a thread budget of cores /
    max_parallel; an evaluation that does not fit waits.

    Options: ``fork_server`` (None = auto: on for Linux unless HARNESS_FORK_SERVER=0; the
    TensorRT-LLM backends always get a plain process), ``python``, ``threads`` (the thread budget
    per worker; default cores // max_parallel), ``machine`` (a ``slots.Machine``: the devices to
    share out; default ``slots.discover()``).
    """

    name = "local"

    def __init__(self, timeout=1800, max_parallel=1, python: str | None = None, threads: int | None = None,
                 fork_server: bool | None = None, machine: Machine | None = None, **options):
        self.machine = machine or discover()
        super().__init__(timeout, max_parallel, **options)
        self.slots = SlotPool(self.machine, self.max_parallel)
        self.python = python or sys.executable
        self.threads = threads or self.slots.threads
        if fork_server is None:
            fork_server = (sys.platform.startswith("linux") and hasattr(os, "fork")
                           and os.environ.get("HARNESS_FORK_SERVER", "1") != "0")
        self.fork_server = bool(fork_server)
        self._server: ForkServerClient | None = None
        self._server_lock = threading.Lock()

    def resolve_parallel(self, value: int | str) -> int:
        return auto_parallel(self.machine) if value == AUTO else max(1, int(value))

    def capacity(self, spec: EvalSpec) -> int:
        return self.slots.capacity(self.slots.gpus_for(capabilities(spec.backend), spec.config))

    def close(self) -> None:
        with self._server_lock:
            if self._server is not None:
                self._server.close()
                self._server = None

    def _server_for(self, spec: EvalSpec, env: dict, per_eval: dict, log_dir: Path,
                    also: list[str] = ()) -> ForkServerClient | None:
        """The fork server, started on first use; None when it cannot run this evaluation. ``per_eval``:
        variables set for this evaluation only (its slot's devices, --dump-graphs): the server never
        has them, the child gets them (the server never initialises CUDA, so CUDA_VISIBLE_DEVICES
        takes effect in the child). ``also``: other backends whose modules a new server preloads."""
        if not self.fork_server or not capabilities(spec.backend).fork_safe:
            return None
        shared = _without(env, set(per_eval) | {"HARNESS_LAUNCH_TIME"})
        with self._server_lock:
            if self._server is None:
                from harness.execution.forkserver import preload_list

                # the first evaluation's model, loaded once for every worker (CPU machines: on a GPU one
                # the workers load onto their GPU)
                warm = [f"{spec.backend}={spec.model}"] if not self.machine.gpus and _is_local_model(spec.model) else []
                modules = list(dict.fromkeys(m for b in [spec.backend, *also] for m in preload_list(b)))
                self._server = ForkServerClient(self.python, shared, log_dir / "forkserver.log", modules, warm)
            elif import_time_env(self._server.env) != import_time_env(shared) or self._server.dead:
                return None  # environment changed since the server started: plain process
            return self._server

    def _run_forked(self, server: ForkServerClient, request: dict) -> tuple[int, float | None] | None:
        """(returncode, timed_out) of a forked worker; None if the server could not run it."""
        sub = server.submit(request)
        if sub is None:
            return None
        rid, q = sub
        try:
            first = q.get(timeout=300)
            if "pid" not in first:
                return None
            pid = first["pid"]
            try:
                msg = q.get(timeout=self.timeout)
            except queue.Empty:
                _kill_pid_group(pid, signal.SIGTERM)
                try:
                    msg = q.get(timeout=KILL_GRACE_S)
                except queue.Empty:
                    _kill_pid_group(pid, signal.SIGKILL)
                    try:
                        q.get(timeout=30)
                    except queue.Empty:
                        pass
                return -int(signal.SIGKILL), self.timeout
            if "returncode" not in msg:  # the server died under the child (which died with it)
                return None
            _kill_group(pid, signal.SIGKILL)  # stragglers the worker left in its group
            return int(msg["returncode"]), None
        except queue.Empty:
            return None
        finally:
            server.forget(rid)

    def _run_process(self, cmd: list[str], env: dict, log_path: Path) -> tuple[int, float | None]:
        timed_out = None
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
            try:
                rc = proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                timed_out = self.timeout
                _kill_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=KILL_GRACE_S)
                except subprocess.TimeoutExpired:
                    pass
                _kill_group(proc.pid, signal.SIGKILL)
                rc = proc.wait()
            finally:
                if proc.poll() is None:  # interrupted (KeyboardInterrupt): take the worker down too
                    _kill_group(proc.pid, signal.SIGKILL)
            _kill_group(proc.pid, signal.SIGKILL)  # stragglers the worker left in its group
        return rc, timed_out

    def run(self, spec: EvalSpec, workdir: Path, harness_env: dict | None = None) -> EvalResult:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        spec_path, out_path, log_path = workdir / "spec.json", workdir / "result.json", workdir / "worker.log"
        out_path.unlink(missing_ok=True)
        write_json_atomic(spec_path, spec.to_dict())
        caps = capabilities(spec.backend)
        with self.slots.slot(self.slots.gpus_for(caps, spec.config)) as slot:
            per_eval = {**dict(harness_env or {}), **slot.env()}
            env, removed = self._worker_env(spec, per_eval)
            rc, timed_out, mode, wall = self._launch(spec, env, per_eval, spec_path, out_path, log_path)
        result = read_worker_result(rc, out_path, log_path, timed_out=timed_out)
        inner = ((result.info or {}).get("timings") or {}).get("total_s")
        result.info = dict(result.info or {})
        result.info["env_scrubbed"] = removed
        result.info["executor"] = {
            "name": self.name, "mode": mode, "returncode": rc, "wall_s": round(wall, 3),
            "worker_overhead_s": None if inner is None else round(wall - inner, 3),
            "worker_log": str(log_path), **slot.to_dict(), "threads": self.threads,
        }
        return result

    def _worker_env(self, spec: EvalSpec, per_eval: dict) -> tuple[dict, dict]:
        """(the worker's environment, what was scrubbed from it) for ``spec`` with ``per_eval`` set."""
        caps = capabilities(spec.backend)
        env, removed = worker_env(harness_set=per_eval, threads=self.threads, torch_threads=caps.cpu_threads,
                                  offline=_is_local_model(spec.model))
        # the worker imports this very harness, installed or not
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env["HARNESS_PARENT_PID"] = str(os.getpid())
        return env, removed

    def prestart(self, specs: list[EvalSpec], workdir: Path) -> None:
        """Start the fork server now, for the evaluations ``specs`` stand for, without waiting for it: its
        imports and the first model's load (about 4 s on the demo) then overlap the orchestrator's own start
        (building the plan, the first cache keys) instead of following it. The server preloads what every
        listed backend needs (the reference's and the candidate's), so neither backend's workers import it."""
        forkable = [s for s in specs if self.fork_server and capabilities(s.backend).fork_safe]
        if forkable:
            # what a slot sets per evaluation (Slot.env: its devices) stays out of the server's env, as in run()
            per_eval = Slot(0, () if self.machine.gpus else None, self.threads).env()
            env, _ = self._worker_env(forkable[0], per_eval)
            self._server_for(forkable[0], env, per_eval, Path(workdir), also=[s.backend for s in forkable[1:]])

    def _launch(self, spec: EvalSpec, env: dict, per_eval: dict, spec_path: Path, out_path: Path,
                log_path: Path) -> tuple[int, float | None, str, float]:
        """Run the worker: forked from the fork server when it can, else a plain process.
        Returns (returncode, timed_out, mode, wall seconds)."""
        t0 = time.monotonic()
        env["HARNESS_LAUNCH_TIME"] = repr(time.time())
        server = self._server_for(spec, env, per_eval, spec_path.parent.parent)
        if server is not None:
            outcome = self._run_forked(server, {"spec": str(spec_path), "out": str(out_path), "log": str(log_path),
                                                "env": env})
            if outcome is not None:
                return (*outcome, "fork-server", time.monotonic() - t0)
        t0 = time.monotonic()
        env["HARNESS_LAUNCH_TIME"] = repr(time.time())
        outcome = self._run_process(worker_command(spec_path, out_path, self.python), env, log_path)
        return (*outcome, "subprocess", time.monotonic() - t0)


_inprocess_lock = threading.Lock()


class InProcessExecutor(Executor):
    """``run_evaluation`` in this process, one at a time (tests, debugging). No timeout."""

    name = "inprocess"

    def run(self, spec: EvalSpec, workdir: Path, harness_env: dict | None = None) -> EvalResult:
        from harness.evaluation.run import run_evaluation

        with _inprocess_lock:
            env, removed = worker_env(harness_set=harness_env, threads=None, offline=False)
            saved = dict(os.environ)
            t0 = time.monotonic()
            try:
                os.environ.clear()
                os.environ.update(env)
                register_extra_backends()
                try:
                    result = run_evaluation(spec)
                except HarnessError as exc:  # what a worker would report with exit 2
                    raise EngineInputError(str(exc)) from None
                except Exception as exc:  # noqa: BLE001 - outside run_evaluation's own guard
                    result = EvalResult(status="unresolved", error=f"{type(exc).__name__}: {exc}",
                                        log_tail="\n".join(traceback.format_exc().splitlines()[-LOG_TAIL_LINES:]))
            finally:
                os.environ.clear()
                os.environ.update(saved)
        wall = time.monotonic() - t0
        result.info = dict(result.info or {})
        result.info["env_scrubbed"] = removed
        inner = (result.info.get("timings") or {}).get("total_s")
        result.info["executor"] = {"name": self.name, "wall_s": round(wall, 3),
                                   "worker_overhead_s": None if inner is None else round(wall - inner, 3)}
        return result


EXECUTORS: dict[str, object] = {
    "local": LocalExecutor,
    "inprocess": InProcessExecutor,
    "slurm": "harness.execution.slurm:SlurmExecutor",  # submitit; optional import (nightly engineer)
}


def get_executor(name: str, timeout=1800, max_parallel=1, **options) -> Executor:
    if name not in EXECUTORS:
        raise one_of("executor", name, list(EXECUTORS), "Pass --executor with one of these.")
    cls = EXECUTORS[name]
    if isinstance(cls, str):
        module, attr = cls.split(":")
        cls = getattr(importlib.import_module(module), attr)
    return cls(timeout=timeout, max_parallel=max_parallel, **options)
