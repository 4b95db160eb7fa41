"""Fork server: fresh worker processes without paying torch/transformers import every time.

A fresh ``python`` per evaluation costs 3-10 s of imports on this machine (torch, transformers, the
model's modeling module; more when the cores are busy) before any work; a bisect runs 15-25
evaluations. The fork server is a process that imports those once (``preload_list``: what the
backend of its first request needs), never runs a tensor op, and forks one child per
evaluation. Each child is still a fresh process for everything that matters — its own session and
process group, its own log file as stdout+stderr, the per-evaluation environment, its own engine,
and a crash (segfault, OOM kill, hang) takes down only that child — so results and failure
handling are the same as with a plain ``python -m harness worker`` process.

Not used for TensorRT-LLM backends (MPI and CUDA state must not be forked) or when the
environment differs from the one the server started with; the executor then launches a plain
worker process. ``HARNESS_FORK_SERVER=0`` disables it.

Warm models: ``--warm=backend=model`` arguments make the server call ``Backend.warm(model)`` after the
imports (the hf and ad-emulator backends load the model's weights and tokenizer on CPU, without leaving a
thread running), so each forked worker starts with that model in memory, copy-on-write, instead of
reading it again (harness/backends/hf/backend.py, ``keep_loaded``).

Protocol (JSON lines): the server prints ``{"ready": ...}`` after preloading; a request
``{"id", "spec", "out", "log", "env"}`` on stdin is answered by ``{"id", "pid"}`` when the child
starts and ``{"id", "returncode"}`` (``os.waitstatus_to_exitcode``) when it ends. EOF on stdin:
the server kills its children and exits. The server leaves with its parent: the orchestrator's end of
the pipe closes when it dies (EOF), and the loop also checks the parent pid. (Not PR_SET_PDEATHSIG:
Linux sends that signal when the parent *thread* exits, and the orchestrator may start the server
from a thread of ``Runner.evaluate_many``'s pool, which ends with the batch; the server then died
after the first parallel batch and every later evaluation paid a cold ``python`` start.) Each child
dies with the server (PR_SET_PDEATHSIG: the server is single-threaded), so killing the orchestrator
leaves no worker behind.

The server is single-threaded on purpose (select + waitpid polling): forking a multi-threaded
process can leave a child holding a lock no thread will release.
"""
from __future__ import annotations

import gc
import importlib
import json
import os
import select
import signal
import sys
import time
import traceback

from harness.execution.worker import die_with_parent  # the one PR_SET_PDEATHSIG helper

# Imported once by the server; children inherit them. Failures are ignored (the child imports
# what it needs itself). Nothing here may initialise CUDA. (pandas is left out: pyarrow's jemalloc
# starts a background thread at import.) The server preloads COMMON plus the preload list the backend
# of its first request declares; other backends still work, their children import the rest themselves.
COMMON = ["yaml", "numpy", "harness.evaluation.spec", "harness.evaluation.run", "harness.evaluation.records", "harness.tasks.mmlu", "harness.config"]
def preload_list(backend: str) -> list[str]:
    """COMMON plus the modules the backend declares (``Backend.preload_modules``)."""
    from harness.backends import capabilities

    return COMMON + list(capabilities(backend).preload_modules)


def preload(modules) -> dict:
    loaded, failed = [], {}
    for name in modules:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception as exc:  # noqa: BLE001
            failed[name] = f"{type(exc).__name__}: {exc}"[:200]
    for name in ("AutoModelForCausalLM", "AutoTokenizer"):  # resolve transformers' lazy attributes
        try:
            getattr(sys.modules.get("transformers"), name)
        except Exception:  # noqa: BLE001
            pass
    return {"loaded": loaded, "failed": failed}


def _send(msg: dict) -> None:
    try:
        os.write(1, (json.dumps(msg) + "\n").encode("utf-8"))
    except OSError:  # the orchestrator is gone; the children die with us
        pass


def _child(req: dict, server_pid: int) -> None:
    """In the forked child: become a standalone worker, run the spec, exit. Never returns."""
    rc = 1
    try:
        os.setsid()
        die_with_parent(server_pid)  # PR_SET_PDEATHSIG; exits if the server is already gone
        signal.set_wakeup_fd(-1)  # the server's child-exit pipe is not the worker's
        for fd in _WAKE_FDS:
            os.close(fd)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.environ.clear()
        os.environ.update(req["env"])
        started = time.time()
        from harness.execution.worker import evaluate_spec_file
        from harness.errors import HarnessError

        try:
            evaluate_spec_file(req["spec"], req["out"], started, mode="fork-server")
            rc = 0
        except HarnessError as exc:
            print(f"error: {exc}", file=sys.stderr)
            rc = exc.exit_code
    except BaseException:  # noqa: BLE001 - report like an uncaught exception in a worker
        traceback.print_exc()
        rc = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)


_WAKE_FDS: list[int] = []  # the child-exit pipe (``_child_exit_wakeup``), closed in each forked worker


def _orphaned(parent: str | None) -> bool:
    return bool(parent) and str(os.getppid()) != parent


def warm(items: list[str]) -> dict:
    """``backend=model`` items: ``Backend.warm(model)`` of each (the model loaded once, on CPU, before any
    fork; forked workers find it in memory). A failure only costs the speed-up: the worker loads it."""
    from harness.backends import capabilities

    done, failed = [], {}
    for item in items:
        backend, _, model = item.partition("=")
        try:
            capabilities(backend).warm(model)
            done.append(item)
        except Exception as exc:  # noqa: BLE001
            failed[item] = f"{type(exc).__name__}: {exc}"[:200]
    return {"warmed": done, "warm_failed": failed}


def serve(modules: list[str], warm_items: list[str] = ()) -> None:
    parent = os.environ.get("HARNESS_PARENT_PID")
    if _orphaned(parent):
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    t0 = time.time()
    # No cyclic GC while importing: torch + transformers allocate millions of objects and the collector's
    # passes over them cost 0.85 s of the 3.8 s preload on this machine (measured). Then the survivors
    # are frozen (never scanned again, and their pages are not dirtied in the forked children).
    gc.disable()
    try:
        info = preload(modules)
        info.update(warm(list(warm_items)))
    finally:
        gc.freeze()
        gc.enable()
    info["preload_s"] = round(time.time() - t0, 3)
    info["pid"] = os.getpid()
    try:
        info["os_threads"] = len(os.listdir("/proc/self/task"))
    except OSError:
        info["os_threads"] = None
    _send({"ready": True, **info})
    children: dict[int, str] = {}
    buf = b""
    stdin_open = True
    me = os.getpid()
    wake = _child_exit_wakeup()
    while stdin_open or children:
        if stdin_open:
            readable, _, _ = select.select([0, wake], [], [], 0.5)
            if wake in readable:
                _drain(wake)
            if 0 in readable:
                data = os.read(0, 1 << 16)
                if not data:
                    stdin_open = False
                    _kill_all(children)
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        _start(json.loads(line), children, me)
            if stdin_open and _orphaned(parent):  # the orchestrator is gone: end as on EOF
                stdin_open = False
                _kill_all(children)
        else:
            time.sleep(0.05)
        _reap(children)


def _child_exit_wakeup() -> int:
    """A pipe that becomes readable when a child exits (SIGCHLD through ``signal.set_wakeup_fd``), so the loop
    reports a finished evaluation at once instead of at its next poll."""
    r, w = os.pipe()
    _WAKE_FDS[:] = [r, w]
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a Python handler, so the wakeup byte is written
    return r


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _start(req: dict, children: dict[int, str], me: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(req, me)
    children[pid] = req["id"]
    _send({"id": req["id"], "pid": pid})


def _kill_all(children: dict[int, str]) -> None:
    for pid in list(children):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def _reap(children: dict[int, str]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        rid = children.pop(pid, None)
        if rid is not None:
            _send({"id": rid, "returncode": os.waitstatus_to_exitcode(status)})

if __name__ == "__main__":
    WARM = "--warm="
    serve([a for a in sys.argv[1:] if not a.startswith(WARM)], [a[len(WARM):] for a in sys.argv[1:] if a.startswith(WARM)])
    # no interpreter teardown (torch's destructors take about a second): the orchestrator waits for this exit
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
