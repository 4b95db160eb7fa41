"""Runner: the one way the orchestrators evaluate a spec — cached, isolated, concurrent.

    runner = Runner(cache_dir=".harness", use_cache=True, timeout=1800, max_parallel=1,
                    quiet=False, executor="local", workdir=None)
    result = runner.evaluate(spec)            # EvalResult; store lookup first
    results = runner.evaluate_many(specs)     # same order as specs, up to max_parallel at once
    runner.parallel_for(spec)                 # how many evaluations like spec run at once
    runner.key(spec)                          # the cache key (sha256 hex)
    runner.stats                              # hits, misses, evaluations_run, unresolved, ...

``evaluate`` looks the key up in the store (``harness.evaluation.store``); on a miss it runs the spec through
the executor (``harness.execution.executor``: a fresh worker process by default), stores the result in one
transaction and returns it. Every result carries ``info["cache_key"]``, ``info["cached"]`` and
``info["wall_s"]`` (seconds this call took). Only ``ok`` results are served from the cache; an
``unresolved`` one is stored (for `cache ls` and reports) but re-run on the next attempt.
``use_cache=False`` (--no-cache) skips the lookup but still stores the fresh result (and moves a
corrupt store aside instead of stopping). Several runs sharing one store compute each evaluation
once: before evaluating a key the runner claims it in the store (``Store.claim``); a key another
live process holds is waited for and its stored result used. A result this
runner evaluated itself and hands out again (a batch evaluated ahead of its judging, e.g.
``evaluate_many`` before the oracle reads each result) is not "cached": it counts as ``reused``, not
as a store hit. ``max_parallel="auto"`` fills the machine (``harness.execution.slots``); the executor
gives each concurrent evaluation its own devices and thread budget.

Time: ``stats`` sums each evaluation's seconds (``backend_seconds``, ``engine_seconds`` inside
``run_evaluation``, ``worker_overhead_seconds`` outside it) and also measures the union of the
intervals during which any evaluation ran (``busy_seconds``) or any engine ran (``engine_busy_seconds``,
each engine interval taken as the last ``engine`` seconds of its evaluation), so that with parallel
evaluations ``wall - busy_seconds`` is the orchestrator's own time and ``wall - engine_busy_seconds``
everything outside the engines.
Bad input (HarnessError: unknown backend/task, bad config, a worker that exits 2) is raised.
Because every finished evaluation is committed before the next one starts, killing the
orchestrator at any moment and rerunning continues from the stored evaluations.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from harness.evaluation.spec import EvalResult, EvalSpec
from harness.execution.executor import get_executor
from harness.execution.progress import Progress
from harness.jsonio import canonical_json
from harness.evaluation.store import Store

RECENT_RESULTS = 16  # results held in memory for re-reading (a few MB each at 1000 samples)
CLAIM_POLL_S = 0.5  # seconds between looks at a claim another process holds
STAT_KEYS = ("hits", "reused", "misses", "evaluations_run", "unresolved", "backend_seconds", "engine_seconds",
             "worker_overhead_seconds")


def refuse_torchrun(env=None) -> None:
    """The harness launches its own workers; under torchrun every rank would run the whole bisect
    and AD (which spawns its own MPI workers for world_size > 1) deadlocks (docs/method.md, Anti-patterns)."""
    import os

    env = os.environ if env is None else env
    if env.get("TORCHELASTIC_RUN_ID") or env.get("LOCAL_RANK"):
        from harness.errors import HarnessError

        raise HarnessError("the harness is running under torchrun (TORCHELASTIC_RUN_ID/LOCAL_RANK set); run "
                           "`python -m harness ...` directly: it starts one worker per evaluation and AD spawns "
                           "its own processes for world_size > 1.")


def spec_label(spec: EvalSpec) -> str:
    return spec.label or f"{spec.backend} {Path(spec.model).name} {spec.task}"


class Runner:
    def __init__(self, cache_dir: str | Path = ".harness", use_cache: bool = True, timeout: float | None = 1800,
                 max_parallel: int = 1, quiet: bool = False, executor: str = "local", workdir: str | Path | None = None,
                 *, progress: Progress | None = None, dump_graphs_dir: str | Path | None = None,
                 executor_options: dict | None = None, in_process: bool = False):
        refuse_torchrun()
        if in_process:  # the brief's original spelling of executor="inprocess"
            executor = "inprocess"
        self.cache_dir = Path(cache_dir)
        self.store = Store(self.cache_dir, recover=not use_cache)
        self.use_cache = use_cache
        self.timeout = timeout
        self.workdir = Path(workdir) if workdir else self.cache_dir / "work"
        self.dump_graphs_dir = Path(dump_graphs_dir) if dump_graphs_dir else None
        self.executor = get_executor(executor, timeout=timeout, max_parallel=max_parallel,
                                     **(executor_options or {}))
        self.max_parallel = self.executor.max_parallel  # "auto" resolved by the executor
        self.progress = progress or Progress(quiet=quiet)
        if self.store.moved_aside is not None:
            self.progress.log(f"warning: the cache database was corrupt; moved it aside to {self.store.moved_aside} "
                              "and started a new one")
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self._stats = {k: 0 for k in STAT_KEYS}
        self._keys: dict[str, tuple[str, dict]] = {}
        self._inflight: dict[str, Future] = {}
        self._ran: set[str] = set()  # keys this runner evaluated
        self._held: dict[str, EvalResult] = {}  # unresolved results of evaluate_many, handed out once more
        self._intervals: list[tuple[float, float, float]] = []  # (start, end, engine seconds) per evaluation
        self._recent: dict[str, EvalResult] = {}  # the last RECENT_RESULTS ok results this runner evaluated

    # -- API --------------------------------------------------------------------------------
    @property
    def stats(self) -> dict:
        with self._lock:
            out = dict(self._stats)
            spans = list(self._intervals)
        for k in ("backend_seconds", "engine_seconds", "worker_overhead_seconds"):
            out[k] = round(out[k], 3)
        out["busy_seconds"] = round(union_seconds([(a, b) for a, b, _ in spans]), 3)
        out["engine_busy_seconds"] = round(union_seconds([(b - min(e, b - a), b) for a, b, e in spans]), 3)
        out["wall_seconds"] = round(time.monotonic() - self._t0, 3)
        return out

    def parallel_for(self, spec: EvalSpec) -> int:
        """How many evaluations like ``spec`` run at once (max_parallel, fewer when each needs several
        of the machine's GPUs)."""
        return max(1, min(self.max_parallel, self.executor.capacity(spec)))

    def key(self, spec: EvalSpec) -> str:
        """The cache key of ``spec`` (memoised per spec content for this runner)."""
        return self._key_and_digests(spec)[0]

    def _key_and_digests(self, spec: EvalSpec) -> tuple[str, dict]:
        from harness.evaluation.key import key_digests, key_of, key_parts

        memo = canonical_json({k: v for k, v in spec.to_dict().items() if k != "label"})
        with self._lock:
            if memo in self._keys:
                return self._keys[memo]
        parts = key_parts(spec)
        out = (key_of(parts), key_digests(parts))
        with self._lock:
            self._keys[memo] = out
        return out

    def prestart(self, specs: list[EvalSpec]) -> None:
        """Let the executor get ready for evaluations like ``specs`` (start its warm worker machinery) while the
        caller is still preparing; returns at once."""
        self.executor.prestart(list(specs), self.workdir)

    def plan(self, n: int) -> None:
        """Announce n more evaluations (shown as done/planned)."""
        self.progress.plan(n)

    def expect(self, total: int) -> None:
        """The run now expects ``total`` evaluations in all (the progress bar's total and ETA)."""
        self.progress.expect(total)

    def phase(self, name: str, planned: int | None = None) -> None:
        self.progress.phase(name, planned)

    def evaluate(self, spec: EvalSpec) -> EvalResult:
        key = self.key(spec)
        t0 = time.monotonic()
        token = self.progress.start(spec_label(spec))
        try:
            result, source = self._get_or_run(spec, key, token)
        except BaseException as exc:
            self.progress.abort(token, spec_label(spec), exc)
            raise
        wall = time.monotonic() - t0
        result.info["cache_key"] = key
        result.info["cached"] = source == "cache"
        if source == "reused":
            result.info["reused"] = True
        result.info["wall_s"] = round(wall, 3)
        self.progress.finish(token, spec_label(spec), result, source != "run", wall)
        return result

    def evaluate_many(self, specs: list[EvalSpec]) -> list[EvalResult]:
        """Evaluate concurrently (up to max_parallel); results in the order of ``specs``.

        Keys are computed first, so bad input is raised before anything runs. A spec that
        appears twice is evaluated once.
        """
        specs = list(specs)
        for s in specs:
            self.key(s)
        if self.max_parallel == 1 or len(specs) <= 1:
            return [self._evaluate_held(s) for s in specs]
        with ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="harness-many") as pool:
            futures = [pool.submit(self._evaluate_held, s) for s in specs]
            return [f.result() for f in futures]

    def _evaluate_held(self, spec: EvalSpec) -> EvalResult:
        """``evaluate``; an unresolved result it ran is held for the next ``evaluate`` of the same spec,
        which gets it instead of running it again (a batch evaluated ahead of its reader, then read
        back: the reader's own retry of an unresolved result is the second attempt, not the third)."""
        result = self.evaluate(spec)
        if result.status != "ok" and not result.info.get("cached") and not result.info.get("reused"):
            key = self.key(spec)  # takes self._lock itself: not under it
            with self._lock:
                self._held[key] = result
        return result

    def close(self) -> None:
        self.executor.close()
        self.progress.close()
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- internals --------------------------------------------------------------------------
    def _count(self, **inc) -> None:
        with self._lock:
            for k, v in inc.items():
                self._stats[k] += v

    def _get_or_run(self, spec: EvalSpec, key: str, token: int | None = None) -> tuple[EvalResult, str]:
        """(result, where it came from: "run" now, "cache" (an earlier run's) or "reused" (this runner's))."""
        with self._lock:
            held = self._held.pop(key, None)
        if held is not None:
            self._count(reused=1)
            return _copy_result(held), "reused"
        if self.use_cache or key in self._ran:
            hit = self._recent_result(key) or self.store.get(key)
            if hit is not None:
                source = "reused" if key in self._ran else "cache"
                self._count(**{"reused" if source == "reused" else "hits": 1})
                return hit, source
        # one evaluation per key at a time, even when two callers ask concurrently
        with self._lock:
            fut = self._inflight.get(key)
            owner = fut is None
            if owner:
                fut = Future()
                self._inflight[key] = fut
        if not owner:
            result = fut.result()
            self._count(reused=1)
            return _copy_result(result), "reused"
        try:
            result, cached = self._claimed_run(spec, key, token)
            fut.set_result(result)
        except BaseException as exc:
            fut.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._inflight.pop(key, None)
        return _copy_result(result), "cache" if cached else "run"

    def _claimed_run(self, spec: EvalSpec, key: str, token: int | None = None) -> tuple[EvalResult, bool]:
        """Run ``spec`` under the store's claim on ``key`` (with the cache on), so a run sharing this store
        computes it once: while another live process holds the claim, wait and take its stored result."""
        if not self.use_cache:
            return self._run(spec, key, token), False
        ttl = (self.timeout or 86400) + 600  # a claim outlives the longest evaluation it can stand for
        waiting_since = None
        while (holder := self.store.claim(key, ttl)) is not None:
            if waiting_since is None:
                waiting_since = time.time()
                self.progress.log(f"wait   {spec_label(spec)}: being evaluated by pid {holder['pid']} on "
                                  f"{holder['host']} (same store)")
            time.sleep(CLAIM_POLL_S)
        try:
            done = self.store.get(key, include_unresolved=waiting_since is not None, since=waiting_since)
            if done is not None:  # the other run's result (or one stored between our lookup and the claim)
                self._count(hits=1)
                return done, True
            return self._run(spec, key, token), False
        finally:
            self.store.release(key)

    def _run(self, spec: EvalSpec, key: str, token: int | None = None) -> EvalResult:
        from harness.backends.progress import PROGRESS_FILE_ENV
        from harness.evaluation.key import code_hash

        self._count(misses=1)
        harness_env = {}
        if self.dump_graphs_dir is not None:
            harness_env["AD_DUMP_GRAPHS_DIR"] = str((self.dump_graphs_dir / key[:16]).resolve())
        recorded = dict(harness_env)
        # per-sample progress from the worker (harness/backends/progress.py), tailed while it runs
        progress_file = (self.workdir / key[:16] / "progress").resolve()
        progress_file.parent.mkdir(parents=True, exist_ok=True)
        progress_file.unlink(missing_ok=True)
        harness_env[PROGRESS_FILE_ENV] = str(progress_file)
        t0 = time.monotonic()
        with self.progress.watch(token, progress_file) if token is not None else _nothing():
            result = self.executor.run(spec, self.workdir / key[:16], harness_env)
        t1 = time.monotonic()
        seconds = t1 - t0
        result.info = dict(result.info or {})
        result.info["key_parts"] = self._key_and_digests(spec)[1]
        result.info["harness_code"] = code_hash()
        if recorded:
            result.info["harness_env"] = recorded
        inner = (result.info.get("timings") or {}).get("total_s") or 0.0
        self._count(evaluations_run=1, unresolved=int(result.status != "ok"), backend_seconds=seconds,
                    engine_seconds=inner, worker_overhead_seconds=max(0.0, seconds - inner) if inner else 0.0)
        self.store.put(key, spec.to_dict(), result)
        with self._lock:
            self._ran.add(key)
            self._intervals.append((t0, t1, inner))
            if result.status == "ok":  # what the store would serve: kept to skip decoding it again
                self._recent[key] = result
                while len(self._recent) > RECENT_RESULTS:
                    self._recent.pop(next(iter(self._recent)))
        return result

    def _recent_result(self, key: str) -> EvalResult | None:
        """A copy of a result this runner evaluated and still holds in memory (the batch a prefetch evaluated
        is read back one result at a time; decoding each from the store again cost ~0.3 s a bisect)."""
        with self._lock:
            held = self._recent.get(key)
        return None if held is None else _copy_result(held)


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def union_seconds(spans: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals."""
    total, end = 0.0, None
    for a, b in sorted(spans):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def _copy_result(result: EvalResult) -> EvalResult:
    """A deep copy, so a result held here (in flight, held or recent) is never changed by whoever gets it."""
    import copy

    return EvalResult.from_dict(copy.deepcopy(result.to_dict()))
