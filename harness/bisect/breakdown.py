"""Phase 5: the per-subject breakdown of the decisive comparison, reference vs full candidate
(docs/method.md, "Phase 5").

When the full config regresses, the breakdown (tables, flags, plot: ``harness.analysis.breakdown``)
starts early, in a separate process - ``python -m harness breakdown`` on the decisive runs - so it
runs on the idle core while the workers evaluate the search (``BackgroundBreakdown``). A separate
process, not a thread: the breakdown's statistics must not share the interpreter with other work
(they came out different when they did). Otherwise, or when the background process fails, it
runs inline at the end.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from harness.bisect.context import BisectContext
from harness.bisect.state import BisectState

BACKGROUND_TIMEOUT = 300  # seconds to wait for the background breakdown before computing it inline


class BackgroundBreakdown:
    """``python -m harness breakdown`` on decisive/{reference,candidate}, writing <run_dir>/breakdown."""

    def __init__(self, proc: subprocess.Popen | None):
        self.proc = proc

    @classmethod
    def start(cls, ctx: BisectContext, state: BisectState) -> BackgroundBreakdown | None:
        """Start it (local executors only); None when it is better computed inline."""
        if ctx.inp.executor == "inprocess" or state.decisive_pair() is None or _search_is_cached(ctx):
            return None
        try:
            from harness.paths import REPO_ROOT
            from harness.bisect.report import write_decisive

            ctx.run_dir.mkdir(parents=True, exist_ok=True)  # not made yet: the report is written last
            write_decisive(ctx.run_dir, state.results, state.specs)
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
            cmd = [sys.executable, "-m", "harness", "breakdown", str(ctx.run_dir / "decisive" / "reference"),
                   str(ctx.run_dir / "decisive" / "candidate"), "--out", str(ctx.run_dir / "breakdown"),
                   "--alpha", str(ctx.inp.alpha), "--json"]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        except Exception:  # noqa: BLE001 - Phase 5 then runs inline at the end
            proc = None
        return cls(proc)

    def result(self) -> dict | None:
        """What the breakdown wrote (its --json output), or None when it failed or timed out."""
        proc = self.proc
        if proc is None:
            return None
        try:
            out, _ = proc.communicate(timeout=BACKGROUND_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return None
        if proc.returncode != 0:
            return None
        try:
            return json.loads(out)
        except ValueError:
            return None


def _search_is_cached(ctx: BisectContext) -> bool:
    """A rerun from the store has no evaluation to hide the breakdown behind: run it inline then."""
    try:
        store = getattr(ctx.runner, "store", None)
        return store is not None and ctx.inp.use_cache and \
            store.get(ctx.runner.key(ctx.cand_spec(ctx.minimal_user, "minimal"))) is not None
    except Exception:  # noqa: BLE001 - only a scheduling hint
        return False


def per_subject_breakdown(ctx: BisectContext, state: BisectState, background: BackgroundBreakdown | None = None
                          ) -> None:
    pair = state.decisive_pair()
    if pair is None:
        state.phases["5"] = {"ran": False, "note": "no paired records"}
        return
    ctx.phase("phase 5: per-subject breakdown")
    from harness.analysis.breakdown import per_subject

    ref, cand = pair
    out = {"ran": True, "comparison": "reference vs full candidate (Phase 1)",
           "per_subject": per_subject(ref.records, cand.records)}
    bd_dir = ctx.run_dir / "breakdown"
    written = background.result() if background is not None else None
    out["computed"] = "background" if written is not None else "inline"
    if written is None:
        written = _inline(ctx, ref, cand, out)
    if isinstance(written, dict):
        from harness.comparison.verdict import json_safe

        out["breakdown"] = json_safe({k: v for k, v in written.items()
                                      if isinstance(v, (str, int, float, list, dict))})
    if bd_dir.is_dir():
        out["files"] = sorted(str(p.relative_to(ctx.run_dir)) for p in bd_dir.rglob("*") if p.is_file())
    state.phases["5"] = out


def _inline(ctx: BisectContext, ref, cand, out: dict):
    """The breakdown in this process; a failure becomes a note in ``out``, never the bisect's end."""
    try:
        from harness.analysis.breakdown import write_breakdown

        bd_dir = ctx.run_dir / "breakdown"
        bd_dir.mkdir(parents=True, exist_ok=True)
        task_meta = {"multiple_choice": True} if ctx.inp.task == "mmlu" else None
        return write_breakdown(ref.records, cand.records, bd_dir, task_meta=task_meta,
                               alpha=ctx.inp.alpha, labels=(ctx.inp.backend_ref, ctx.inp.backend))
    except ImportError:
        out["note"] = "harness.analysis.breakdown not available; per-subject table only"
    except Exception as exc:  # noqa: BLE001 - the breakdown must not sink the bisect
        out["note"] = f"breakdown failed: {type(exc).__name__}: {exc}"
    return None
