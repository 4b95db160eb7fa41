"""Phase 5: the per-subject breakdown of the decisive comparison, reference vs full candidate
(docs/method.md, "Phase 5").

When the full config regresses, the breakdown (tables, flags, plot: ``harness.analysis.breakdown``)
starts early, in a spawned child process given the decisive runs' records, so it runs on the idle
core while the workers evaluate the search (``BackgroundBreakdown``). A separate process, not a
thread: the breakdown's statistics must not share the interpreter with other work (they came out
different when they did). Otherwise, or when the background process fails, it runs inline at the
end with the same arguments.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from harness.bisect.context import BisectContext
from harness.bisect.state import BisectState

BACKGROUND_TIMEOUT = 300  # seconds to wait for the background breakdown before computing it inline


class BackgroundBreakdown:
    """``write_breakdown`` on the decisive runs in a spawned child process, writing <run_dir>/breakdown
    with exactly the arguments the inline path uses (so a fresh run and a rerun from the store write
    the same files). The child dies with the orchestrator."""

    def __init__(self, proc, result_path):
        self.proc = proc
        self.result_path = result_path

    @classmethod
    def start(cls, ctx: BisectContext, state: BisectState) -> BackgroundBreakdown | None:
        """Start it (local executors only); None when it is better computed inline."""
        if ctx.inp.executor == "inprocess" or state.decisive_pair() is None or _search_is_cached(ctx):
            return None
        ref, cand = state.decisive_pair()
        out_dir = ctx.run_dir / "breakdown"
        result_path = ctx.run_dir / ".breakdown-result.json"
        try:
            import multiprocessing

            out_dir.mkdir(parents=True, exist_ok=True)
            # the orchestrator's pid, taken here: read in the child it could already be init's (the orchestrator
            # killed while the child imports), and the child would outlive it
            args = (os.getpid(), ref.records, cand.records, str(out_dir), *_breakdown_options(ctx), str(result_path))
            proc = multiprocessing.get_context("spawn").Process(target=_background_main, args=args, daemon=True)
            proc.start()
        except Exception:  # noqa: BLE001 - Phase 5 then runs inline at the end
            return None
        return cls(proc, result_path)

    def result(self) -> dict | None:
        """What the breakdown wrote, or None when it failed or timed out."""
        self.proc.join(BACKGROUND_TIMEOUT)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
            return None
        try:
            data = json.loads(self.result_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        finally:
            self.result_path.unlink(missing_ok=True)
        return data if self.proc.exitcode == 0 else None


def _breakdown_options(ctx: BisectContext) -> tuple:
    """(task_meta, alpha, labels): the same for the background and the inline breakdown."""
    task_meta = {"multiple_choice": True} if ctx.inp.task == "mmlu" else None
    return task_meta, ctx.inp.alpha, (ctx.inp.backend_ref, ctx.inp.backend)


def _background_main(parent, ref_records, cand_records, out_dir, task_meta, alpha, labels, result_path) -> None:
    """The spawned child: dies with its parent (PR_SET_PDEATHSIG, before the heavy imports; exits at once if
    the parent is already gone), writes the breakdown and its result JSON."""
    from harness.execution.worker import die_with_parent

    die_with_parent(parent)
    from harness.analysis.breakdown import write_breakdown
    from harness.comparison.verdict import json_safe
    from harness.jsonio import write_json_atomic

    written = write_breakdown(ref_records, cand_records, out_dir, task_meta=task_meta, alpha=alpha, labels=labels)
    write_json_atomic(result_path, json_safe(written))


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
    state.run_notes["phase5_computed"] = "background" if written is not None else "inline"
    if written is None:
        written = _inline(ctx, ref, cand, out)
    if written is None and bd_dir.is_dir():  # a failed breakdown (a full disk): its partial files are no result
        import shutil

        shutil.rmtree(bd_dir, ignore_errors=True)
    if isinstance(written, dict):
        from harness.comparison.verdict import json_safe

        out["breakdown"] = json_safe({k: _relative(v, ctx.run_dir) for k, v in written.items()
                                      if isinstance(v, (str, int, float, list, dict))})
    if bd_dir.is_dir():
        out["files"] = sorted(str(p.relative_to(ctx.run_dir)) for p in bd_dir.rglob("*") if p.is_file())
    state.phases["5"] = out


def _relative(value, run_dir: Path):
    """A path the breakdown wrote, relative to the run directory: the run is built in a staging directory and
    published under its final name (harness/evaluation/rundir.py), so an absolute path would name the staging one."""
    if isinstance(value, str) and Path(value).is_absolute():
        try:
            return str(Path(value).relative_to(run_dir))
        except ValueError:
            return value
    return value


def _inline(ctx: BisectContext, ref, cand, out: dict):
    """The breakdown in this process; a failure becomes a note in ``out``, never the bisect's end."""
    try:
        from harness.analysis.breakdown import write_breakdown

        bd_dir = ctx.run_dir / "breakdown"
        bd_dir.mkdir(parents=True, exist_ok=True)
        task_meta, alpha, labels = _breakdown_options(ctx)
        return write_breakdown(ref.records, cand.records, bd_dir, task_meta=task_meta, alpha=alpha, labels=labels)
    except ImportError:
        out["note"] = "harness.analysis.breakdown not available; per-subject table only"
    except Exception as exc:  # noqa: BLE001 - the breakdown must not sink the bisect
        out["note"] = f"breakdown failed: {type(exc).__name__}: {exc}"
    return None
