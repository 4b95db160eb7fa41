"""Progress: a bar over the run's evaluations with an ETA, and a bar per running evaluation over its
samples, streamed from the worker.

Three modes, one meaning of ``quiet``:

* ``live`` (stderr is a terminal): a rich display - the phase, a bar of done / expected evaluations,
  elapsed time and an ETA; under it one row per running evaluation with its samples done / total
  (from ``harness/backends/progress.py``: the worker appends ``samples <done> <total>`` to a side file
  the orchestrator tails, ``watch``) and that evaluation's own ETA. Finished evaluations and phases
  are printed above the display as lines.
* ``lines`` (stderr is a file or a pipe: CI logs): the same events as plain lines, prefixed with the
  elapsed time, done / expected and the ETA, plus a samples line every ``LINE_SAMPLES_EVERY_S`` for
  an evaluation that runs long:

      [01:10 9/18 ~0:55 left] done   search: minimal + optimize_rope ok score=28.4 n=102 3.1s

* ``silent`` (``quiet=True``: ``--quiet``): nothing; the command prints only its result.

The ETA is an estimate: the remaining expected evaluations times the mean time of those run so
far (cached ones excluded), the running ones extrapolated from their samples. The expected total
is the caller's estimate (``plan`` adds, ``expect`` sets it); it grows when more evaluations start
than were expected, and equals what was done when the display closes.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time

LINE_SAMPLES_EVERY_S = 30.0
WATCH_INTERVAL_S = 0.5


def _fmt_elapsed(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def _fmt_left(s: float | None) -> str:
    if s is None:
        return ""
    s = int(round(s))
    return f"~{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d} left" if s >= 3600 else f"~{s // 60}:{s % 60:02d} left"


def describe_result(result, cached: bool, seconds: float) -> str:
    parts = [result.status]
    score = (result.metrics or {}).get("score")
    if isinstance(score, (int, float)):
        parts.append(f"score={score:.1f}")
    n = (result.metrics or {}).get("n")
    if n is not None:
        parts.append(f"n={n}")
    parts.append(f"{seconds:.1f}s")
    if cached:
        parts.append("(cached)")
    if result.status != "ok" and result.error:
        parts.append(f"- {result.error[:160]}")
    return " ".join(parts)


class _Running:
    """One evaluation in flight: when it started, its samples so far, its live row."""

    def __init__(self, label: str):
        self.label, self.t0, self.done, self.total, self.row, self.last_line = label, time.monotonic(), 0, 0, None, 0.0

    def left(self, now: float, mean: float | None) -> float | None:
        if self.done and self.total:
            return (now - self.t0) * (self.total - self.done) / self.done
        return None if mean is None else max(0.0, mean - (now - self.t0))


class Progress:
    def __init__(self, quiet: bool = False, stream=None):
        self.stream = stream or sys.stderr
        tty = getattr(self.stream, "isatty", lambda: False)()
        self.mode = "silent" if quiet else ("live" if tty else "lines")
        self.quiet = self.mode != "live"  # the former meaning: no live display
        self.t0 = time.monotonic()
        self.planned = 0
        self.done = 0
        self.current_phase = ""
        self._durations: list[float] = []  # uncached evaluations, seconds
        self._running: dict[int, _Running] = {}
        self._lock = threading.RLock()
        self._rich = None
        self._overall = None

    # -- estimates ------------------------------------------------------------------------------
    def eta_seconds(self, now: float | None = None) -> float | None:
        """Seconds until the expected evaluations are done (None until one has run). Lock-free: the
        live display calls it from its own thread."""
        now = time.monotonic() if now is None else now
        durations, running = list(self._durations), list(self._running.values())
        mean = sum(durations) / len(durations) if durations else None
        left = [r.left(now, mean) for r in running]
        if mean is None and (not left or None in left):
            return None
        queued = max(0, self.planned - self.done - len(running))
        if not running and not queued:
            return None
        return sum(x for x in left if x is not None) + queued * (mean or 0.0)

    def _count(self) -> str:
        return f"{self.done}/{max(self.planned, self.done)} evaluations"

    # -- output -----------------------------------------------------------------------------
    def _live(self):
        if self._rich is None and self.mode == "live":
            from rich.console import Console
            from rich.progress import BarColumn, Progress as RichProgress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._rich = RichProgress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=28),
                TextColumn("{task.fields[count]}"), TimeElapsedColumn(), _eta_column(self),
                console=Console(file=self.stream), transient=False, redirect_stdout=False, redirect_stderr=False)
            self._rich.start()
            self._overall = self._rich.add_task(self.current_phase or "evaluations", total=max(self.planned, 1),
                                                completed=self.done, count=self._count(), token=None)
        return self._rich

    def _line(self, text: str) -> None:
        if self.mode == "silent":
            return
        left = _fmt_left(self.eta_seconds())
        prefix = (f"[{_fmt_elapsed(time.monotonic() - self.t0)} {self.done}/{max(self.planned, self.done)}"
                  f"{' ' + left if left else ''}]")
        if self.mode == "lines":
            print(f"{prefix} {text}", file=self.stream, flush=True)
        else:
            self._live().console.print(f"{prefix} {text}", markup=False, highlight=False)

    def _refresh(self) -> None:
        if self._rich is not None:
            self._rich.update(self._overall, total=max(self.planned, self.done, 1), completed=self.done,
                              description=self.current_phase or "evaluations", count=self._count())

    # -- events -----------------------------------------------------------------------------
    def plan(self, n: int) -> None:
        """n more evaluations are expected (the total shown as done/expected)."""
        with self._lock:
            self.planned += int(n)
            self._refresh()

    def expect(self, total: int) -> None:
        """The run now expects ``total`` evaluations in all (a better estimate than the sum of ``plan``)."""
        with self._lock:
            self.planned = max(int(total), self.done + len(self._running))
            self._refresh()

    def phase(self, name: str, planned: int | None = None) -> None:
        with self._lock:
            self.current_phase = name
            if planned:
                self.planned += int(planned)
            self._line(f"phase  {name}")
            self._refresh()

    def log(self, text: str) -> None:
        with self._lock:
            self._line(text)

    def start(self, label: str) -> int:
        with self._lock:
            if self.done + len(self._running) >= self.planned:
                self.planned = self.done + len(self._running) + 1
            token = id(object()) ^ int(time.monotonic_ns())
            run = self._running[token] = _Running(label)
            if self.mode == "lines":
                self._line(f"start  {label}")
            elif self.mode == "live":
                run.row = self._live().add_task(f"  {label}", total=None, count="", token=token)
            self._refresh()
            return token

    def samples(self, token: int, done: int, total: int) -> None:
        """The running evaluation ``token`` has ``done`` of ``total`` samples."""
        with self._lock:
            run = self._running.get(token)
            if run is None or (done, total) == (run.done, run.total):
                return
            run.done, run.total = done, total
            if run.row is not None and self._rich is not None:
                self._rich.update(run.row, total=max(total, 1), completed=done, count=f"{done}/{total} samples")
            now = time.monotonic()
            if self.mode == "lines" and 0 < done < total and now - max(run.t0, run.last_line) >= LINE_SAMPLES_EVERY_S:
                run.last_line = now
                left = _fmt_left(run.left(now, None))
                self._line(f"       {run.label}: {done}/{total} samples{', ' + left if left else ''}")

    @contextlib.contextmanager
    def watch(self, token: int, path):
        """Tail the worker's progress file ``path`` (harness/backends/progress.py) while the block runs."""
        if self.mode == "silent":
            yield
            return
        from harness.backends.progress import read_samples

        stop = threading.Event()

        def tail():
            while not stop.wait(WATCH_INTERVAL_S):
                got = read_samples(path)
                if got is not None:
                    self.samples(token, *got)

        thread = threading.Thread(target=tail, name="harness-progress-watch", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=2)
            got = read_samples(path)  # the last report, even from an evaluation shorter than one poll
            if got is not None:
                self.samples(token, *got)

    def finish(self, token: int, label: str, result, cached: bool, seconds: float) -> None:
        with self._lock:
            self._drop(token)
            self.done += 1
            if not cached:
                self._durations.append(seconds)
            self._line(f"{'cached' if cached else 'done  '} {label} {describe_result(result, cached, seconds)}")
            self._refresh()

    def abort(self, token: int, label: str, exc: BaseException) -> None:
        """The evaluation raised (bad input): drop its row, say why."""
        with self._lock:
            self._drop(token)
            self.planned = max(self.done, self.planned - 1)
            self._line(f"failed {label}: {str(exc)[:200]}")
            self._refresh()

    def _drop(self, token: int) -> None:
        run = self._running.pop(token, None)
        if run is not None and run.row is not None and self._rich is not None:
            self._rich.remove_task(run.row)

    def close(self) -> None:
        """Stop the live display (the bar left at done/done); idempotent. Call it before printing results."""
        with self._lock:
            if self._rich is not None:
                self.planned, self.current_phase = self.done, "done"
                self._refresh()
                self._rich.stop()
                self._rich = None


def _eta_column(owner: Progress):
    """rich column: the ETA of the whole run (the overall row) or of one evaluation (its row)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class EtaColumn(ProgressColumn):
        max_refresh = 0.5

        def render(self, task):
            token = task.fields.get("token")
            if token is None:
                text = _fmt_left(owner.eta_seconds())
            else:
                run = owner._running.get(token)
                text = _fmt_left(run.left(time.monotonic(), None)) if run is not None else ""
            return Text(text, style="progress.remaining")

    return EtaColumn()
