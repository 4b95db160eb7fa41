"""Phase 4, automated: localize the first divergence inside the culprit (docs/method.md, "Phase 4").

Runs after a confirmed culprit (the candidate is the minimal config plus the culprits, the control the
minimal config, which the search judged reference-like) or when the minimal config itself still
regresses (the candidate is the minimal config; the control the core-path ladder's recovering rung,
when one recovered). ``--no-localize`` turns it off. The reference is the run's reference spec; the
prompts are the ``PROMPTS`` most divergent samples of the decisive comparison (answer-letter KL,
reference vs full candidate). The work is ``harness.analysis.localize.job``:

* where both backends capture activations (``supports_activation_capture``): the layer-wise
  comparison, the noise band, the first divergence, the weight check of a quantized candidate and the
  plot ``localization.png`` in the run directory. It runs in a worker process started when the search
  begins (its imports overlap the search; ``harness/analysis/localize/worker.py``), killed after
  ``TIMEOUT`` seconds: a crash or hang is reported in the result, never a crash of the bisect. With
  ``--executor inprocess`` (no isolation asked for) it runs in this process;
* where the candidate's runs carry AD graph dumps (``info["dump_graphs_dir"]``, ``--dump-graphs``):
  the diff of the dumps before and after the culprit's transforms (``graph_diff.around``).

The result is cached under ``<cache-dir>/localize/`` by its request and the backends' versions, so a
rerun from the store repeats nothing and writes the same summary. It goes to ``state.localization``
(summary.json ``localization``); how long it took to ``state.run_notes["localize"]``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from harness.bisect.context import BisectContext
from harness.bisect.state import BisectState

PROMPTS = 4  # "a handful of the most divergent prompts"
TIMEOUT = 600.0  # seconds for the whole localization
VERSION = 2  # of the localization's result: part of its cache key
PLOT = "localization.png"


class Localizer:
    """``start`` when the search begins, ``speculate`` when it names culprits, ``run`` after the phases,
    ``close`` always."""

    def __init__(self, ctx: BisectContext, state: BisectState, enabled: bool):
        self.ctx, self.state, self.enabled = ctx, state, enabled
        self.proc: subprocess.Popen | None = None
        self.out_path: Path | None = None
        self.log_path: Path | None = None
        self.sent: dict | None = None  # the request the worker is computing ahead of Phase 6's verdict

    @classmethod
    def start(cls, ctx: BisectContext, state: BisectState) -> "Localizer":
        loc = cls(ctx, state, bool(getattr(ctx.inp, "localize", True)))
        if loc.enabled and captures(ctx) and ctx.inp.executor != "inprocess":
            loc._spawn()
        return loc

    def _spawn(self) -> None:
        from harness.execution.envscrub import worker_env

        work = Path(self.ctx.inp.cache_dir) / "work"
        work.mkdir(parents=True, exist_ok=True)
        stem = f"localize-{os.getpid()}-{int(time.time() * 1000)}"
        self.out_path, self.log_path = work / f"{stem}.json", work / f"{stem}.log"
        env, _ = worker_env(threads=1)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "harness.analysis.localize.worker", "--out",
                                          str(self.out_path)], stdin=subprocess.PIPE, stdout=log,
                                         stderr=subprocess.STDOUT, env=env, start_new_session=True, text=True)

    def close(self) -> None:
        """Stop the worker if it is still waiting (nothing asked) or running (interrupted)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if self.sent is not None:  # computing for culprits Phase 6 did not confirm: its result is not wanted
            self.sent = None
            _kill(proc)
            return
        try:
            if proc.stdin and not proc.stdin.closed:
                proc.stdin.close()  # an empty request: the worker exits
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            _kill(proc)

    def speculate(self, culprits: list[list[str]]) -> None:
        """Hand the search's culprits to the worker now, so the localization runs while Phase 6 confirms them
        (its model passes fill the cores Phase 6 leaves idle, and it no longer follows Phase 6 on the wall
        clock). ``run`` uses the result only if Phase 6 confirms these culprits; otherwise ``close`` kills it."""
        if not self.enabled or self.proc is None or not culprits or not captures(self.ctx):
            return
        request, key, cached = self._prepare(culprit_target(self.ctx, [k for group in culprits for k in group]))
        if cached is None and self._send(request):
            self.sent = {"key": key, "t0": time.monotonic()}

    def run(self) -> None:
        """Localize when the outcome calls for it; record the result (or why not) in the state."""
        if not self.enabled:
            self.state.localization = {"ran": False, "note": "turned off (--no-localize)"}
            return
        target = choose_target(self.ctx, self.state)
        if isinstance(target, str):
            self.state.localization = {"ran": False, "note": target}
            return
        self.ctx.phase("phase 4: localize the first divergence (layer-wise)")
        t0 = self.sent["t0"] if self.sent else time.monotonic()
        result, cached = self._layerwise(target) if captures(self.ctx) else (None, False)
        loc = dict(result or {"ran": False, "available": False, "note": no_capture_note(self.ctx)})
        notes = {"seconds": round(time.monotonic() - t0, 3), "cached": cached, "timings": loc.pop("timings", None)}
        loc["graph"] = graph_view(self.ctx, self.state, target["knobs"])
        loc.update({"target": target["kind"], "culprits": target["knobs"]})
        self.state.localization = loc
        self.state.run_notes["localize"] = notes

    def _prepare(self, target: dict) -> tuple[dict, str, dict | None]:
        """(the request for ``target``, its cache key, the cached result or None). A request to compute
        writes its plot into the run directory."""
        request = build_request(self.ctx, self.state, target)
        key = cache_key(request)
        cached = read_cached(self.ctx, key)
        if cached is None:
            request["plot"] = str(self.ctx.run_dir / PLOT)
            self.ctx.run_dir.mkdir(parents=True, exist_ok=True)
        return request, key, cached

    def _layerwise(self, target: dict) -> tuple[dict, bool]:
        request, key, cached = self._prepare(target)
        if cached is not None:
            return _with_plot(self.ctx, cached, key), True
        sent, self.sent = self.sent, None
        if sent is not None and sent["key"] == key:
            result = self._collect()  # the request ``speculate`` sent is this one
        else:
            result = self._execute(request)
        if result.get("ran"):
            write_cached(self.ctx, key, result)
        return _with_plot(self.ctx, result, key), False

    def _execute(self, request: dict) -> dict:
        if self.ctx.inp.executor == "inprocess":  # no worker was started (``start``)
            from harness.analysis.localize.worker import handle
            from harness.comparison.verdict import json_safe

            return json_safe(handle(request))
        if self.proc is None or self.proc.stdin is None or self.proc.stdin.closed:  # used by another request
            self._kill_worker()
            self._spawn()
        if not self._send(request):
            return {"ran": False, "error": "the localization worker died before it got the request",
                    "log_tail": _tail(self.log_path)}
        return self._collect()

    def _send(self, request: dict) -> bool:
        try:
            self.proc.stdin.write(json.dumps(request))
            self.proc.stdin.close()
            return True
        except OSError:
            return False

    def _kill_worker(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            _kill(proc)

    def _collect(self) -> dict:
        """The worker's result for the request it was sent (waits for it)."""
        proc, self.proc = self.proc, None
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill(proc)
            return {"ran": False, "error": f"the localization worker did not finish in {TIMEOUT:.0f} s (killed)"}
        except OSError as exc:
            _kill(proc)
            return {"ran": False, "error": f"the localization worker died: {exc}", "log_tail": _tail(self.log_path)}
        if proc.returncode != 0 or not self.out_path.is_file():
            return {"ran": False, "error": f"the localization worker exited with code {proc.returncode}",
                    "log_tail": _tail(self.log_path)}
        return json.loads(self.out_path.read_text())


def _kill(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _tail(path: Path | None, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except (OSError, TypeError):
        return ""


# -- what to localize ------------------------------------------------------------------------------
def captures(ctx: BisectContext) -> bool:
    """Both backends run the model's modules in Python (activation capture)."""
    from harness.backends import capabilities

    return all(capabilities(b).supports_activation_capture for b in (ctx.inp.backend_ref, ctx.inp.backend))


def no_capture_note(ctx: BisectContext) -> str:
    from harness.backends import capabilities

    which = [b for b in (ctx.inp.backend_ref, ctx.inp.backend) if not capabilities(b).supports_activation_capture]
    verb = "does" if len(which) == 1 else "do"
    return (f"layer-wise comparison not available: {', '.join(which)} {verb} not run the model's modules in this "
            "process (activations cannot be captured at module boundaries); see the graph view")


def choose_target(ctx: BisectContext, state: BisectState) -> dict | str:
    """{"kind", "knobs", "candidate": user config, "label", "control": user config | None, "control_label"},
    or why there is nothing to localize."""
    from harness.config.ops import deep_merge

    if state.outcome == "culprit":
        return culprit_target(ctx, [k for c in state.culprits for k in c["knobs"]])
    if state.outcome == "core_path":
        rung = (state.phases.get("ladder") or {}).get("recovered")
        offer = next((r for r in ctx.plan.ladder if rung and r["axis"] == rung["axis"] and r["value"] == rung["value"]),
                     None)
        return {"kind": "core_path", "knobs": [], "label": "the minimal config", "candidate": ctx.minimal_user,
                "control": deep_merge(ctx.minimal_user, offer["config"]) if offer else None,
                "control_label": f"the minimal config with {rung['axis']} {rung['value']} (recovered in the core-path "
                                 "ladder)" if offer else None}
    return (f"not run: outcome {state.outcome} (localization follows a confirmed culprit, or a minimal config that "
            "still regresses)")


def culprit_target(ctx: BisectContext, knobs: list[str]) -> dict:
    """The minimal config plus the culprits against the minimal config."""
    return {"kind": "culprit", "knobs": knobs, "label": f"minimal + {', '.join(knobs)}",
            "candidate": ctx.plan.config(ctx.user, ctx.plan.closure(knobs)),
            "control": ctx.minimal_user, "control_label": "the minimal config (judged reference-like)"}


def _side(backend: str, model: str, config: dict, plugins, label: str) -> dict:
    return {"backend": backend, "model": str(model), "config": dict(config or {}), "plugins": list(plugins or []),
            "label": label}


def build_request(ctx: BisectContext, state: BisectState, target: dict) -> dict:
    inp, ref = ctx.inp, ctx.ref_spec
    request = {"reference": _side(ref.backend, ref.model, ref.config, [], f"reference {ref.backend}"),
               "candidate": _side(inp.backend, inp.model, target["candidate"], inp.plugins, target["label"]),
               "control": _side(inp.backend, inp.model, target["control"], inp.plugins, target["control_label"])
               if target.get("control") is not None else None,
               "prompts": divergent_prompts(ctx, state, PROMPTS),
               "truncate_prompt_tokens": _truncation(ref),
               "weights_reference": _side(ref.backend, inp.unquantized_model, {}, [], f"unquantized {inp.unquantized_model}")
               if inp.unquantized_model else None,
               "title": f"{target['label']} vs reference {ref.backend}"}
    return request


def _truncation(spec) -> int | None:
    """The prompt-token limit the engines apply to this spec (the same tokens for every model)."""
    from harness.evaluation.spec import sampling_for
    from harness.tasks import get_task

    return sampling_for(get_task(spec.task), spec).truncate_prompt_tokens


def divergent_prompts(ctx: BisectContext, state: BisectState, k: int) -> list[dict]:
    """The ``k`` samples of the decisive comparison whose answer-letter distributions differ most
    (KL, reference vs full candidate), with their prompt text; the first ``k`` when none can be ranked."""
    from harness.comparison.logprobs import sample_divergence
    from harness.evaluation.spec import build_samples

    ref, cand = state.results.get("reference"), state.results.get("candidate")
    ranked = []
    if ref is not None and cand is not None:
        by_id = {r["id"]: r for r in cand.records or []}
        for rec in ref.records or []:
            other = by_id.get(rec["id"])
            kl = sample_divergence(rec, other).kl if other is not None else None
            ranked.append((-(kl if kl is not None and kl == kl else -1.0), str(rec["id"])))
    ids = [i for _, i in sorted(ranked)][:k] or None
    spec = replace(ctx.ref_spec, samples=k if ids is None else len(ids), sample_ids=ids)
    _, samples = build_samples(spec)
    return [{"id": s.id, "text": s.prompt} for s in samples]


# -- the cache ---------------------------------------------------------------------------------------
def cache_key(request: dict) -> str:
    from harness.backends import get_backend
    from harness.jsonio import canonical_json, sha

    versions = {side["backend"]: get_backend(side["backend"]).version_key()
                for side in (request["reference"], request["candidate"], request.get("control")) if side}
    plugins = {p: sha(Path(p).read_bytes()) for side in (request["candidate"], request.get("control")) if side
               for p in side.get("plugins") or [] if Path(p).is_file()}
    return sha(canonical_json({"v": VERSION, "request": request, "versions": versions, "plugins": plugins}), 24)


def _cache_dir(ctx: BisectContext) -> Path:
    return Path(ctx.inp.cache_dir) / "localize"


def read_cached(ctx: BisectContext, key: str) -> dict | None:
    path = _cache_dir(ctx) / f"{key}.json"
    if not ctx.inp.use_cache or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_cached(ctx: BisectContext, key: str, result: dict) -> None:
    from harness.jsonio import write_json_atomic

    d = _cache_dir(ctx)
    d.mkdir(parents=True, exist_ok=True)
    write_json_atomic(d / f"{key}.json", {k: v for k, v in result.items() if k != "timings"})
    if result.get("plot") and Path(result["plot"]).is_file():
        shutil.copyfile(result["plot"], d / f"{key}.png")


def _with_plot(ctx: BisectContext, result: dict, key: str) -> dict:
    """The result with its plot in the run directory, named relative to it."""
    result = dict(result)
    target = ctx.run_dir / PLOT
    stored = _cache_dir(ctx) / f"{key}.png"
    if result.get("plot") and not target.is_file() and stored.is_file():
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stored, target)
    if result.get("plot"):
        result["plot"] = PLOT
    return result


# -- the graph view ----------------------------------------------------------------------------------
def graph_view(ctx: BisectContext, state: BisectState, knobs: list[str]) -> dict:
    """The AD graph dumps of the full candidate run diffed around the culprit's transforms."""
    from harness.analysis.localize.graph_diff import around

    cand = state.results.get("candidate")
    dump_dir = (cand.info or {}).get("dump_graphs_dir") if cand is not None else None
    if not dump_dir or not Path(dump_dir).is_dir():
        return {"available": False, "note": "no AD graph dumps for this run (trtllm-ad writes them with "
                                            "--dump-graphs DIR; the emulator writes none)"}
    if not knobs:
        return {"available": False, "note": "no culprit transform to diff around (core-path outcome)"}
    kinds = {k.name: k for k in ctx.plan.togglable}
    transforms, stage = [], None
    for name in knobs:
        kind = getattr(kinds.get(name), "kind", "transform")
        if kind == "world_size":
            stage = "sharding"
        else:
            transforms.append({"compile_backend": "compile_model", "attn_backend": "insert_cached_attention"}
                              .get(kind, name))
    return {"available": True, **around(dump_dir, transforms, stage)}
