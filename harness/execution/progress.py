"""Progress: one live line per phase and per running evaluation, with done/planned and elapsed.

Interactive terminals get a rich live display (stderr); ``quiet=True`` — or a stderr that is not
a terminal (CI logs, pipes) — gets plain one-line-per-event logging instead:

    [00:41 3/12] done   ref hf (demo) ok score=45.0 n=12 3.2s
"""
from __future__ import annotations

import sys
import threading
import time


def _fmt_elapsed(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


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


class Progress:
    def __init__(self, quiet: bool = False, stream=None):
        self.stream = stream or sys.stderr
        self.quiet = quiet or not getattr(self.stream, "isatty", lambda: False)()
        self.t0 = time.monotonic()
        self.planned = 0
        self.done = 0
        self.current_phase = ""
        self._lock = threading.RLock()
        self._rich = None
        self._overall = None
        self._rows: dict[int, object] = {}

    # -- rich -------------------------------------------------------------------------------
    def _live(self):
        if self._rich is None and not self.quiet:
            from rich.console import Console
            from rich.progress import Progress as RichProgress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._rich = RichProgress(
                SpinnerColumn(), TextColumn("{task.description}"), TextColumn("[bold]{task.fields[count]}"),
                TimeElapsedColumn(),
                console=Console(file=self.stream), transient=False, redirect_stdout=False, redirect_stderr=False)
            self._rich.start()
            self._overall = self._rich.add_task(self.current_phase or "evaluations", total=max(self.planned, 1),
                                                completed=self.done, count=self._count())
        return self._rich

    def _line(self, text: str) -> None:
        prefix = f"[{_fmt_elapsed(time.monotonic() - self.t0)} {self.done}/{max(self.planned, self.done)}]"
        if self.quiet:
            print(f"{prefix} {text}", file=self.stream, flush=True)
        else:
            self._live().console.print(f"{prefix} {text}", markup=False, highlight=False)

    def _count(self) -> str:
        return f"{self.done}/{max(self.planned, self.done)} evaluations"

    def _refresh(self) -> None:
        if self._rich is not None:
            self._rich.update(self._overall, total=max(self.planned, self.done, 1), completed=self.done,
                              description=self.current_phase or "evaluations", count=self._count())

    # -- events -----------------------------------------------------------------------------
    def plan(self, n: int) -> None:
        """n more evaluations are planned (the total shown as done/planned)."""
        with self._lock:
            self.planned += int(n)
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
            if self.done + len(self._rows) >= self.planned:
                self.planned = self.done + len(self._rows) + 1
            token = id(object()) ^ int(time.monotonic_ns())
            if self.quiet:
                self._line(f"start  {label}")
                self._rows[token] = None
            else:
                self._rows[token] = self._live().add_task(f"  {label}", total=None, count="")
            self._refresh()
            return token

    def finish(self, token: int, label: str, result, cached: bool, seconds: float) -> None:
        with self._lock:
            row = self._rows.pop(token, None)
            if row is not None and self._rich is not None:
                self._rich.remove_task(row)
            self.done += 1
            self._line(f"{'cached' if cached else 'done  '} {label} {describe_result(result, cached, seconds)}")
            self._refresh()

    def abort(self, token: int, label: str, exc: BaseException) -> None:
        """The evaluation raised (bad input): drop its row, say why."""
        with self._lock:
            row = self._rows.pop(token, None)
            if row is not None and self._rich is not None:
                self._rich.remove_task(row)
            self.planned = max(self.done, self.planned - 1)
            self._line(f"failed {label}: {str(exc)[:200]}")
            self._refresh()

    def close(self) -> None:
        with self._lock:
            if self._rich is not None:
                self._rich.stop()
                self._rich = None
