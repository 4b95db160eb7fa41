"""One localization request, end to end: load the reference, the candidate and the control through their
backends' activation capture, compare them module by module on the same prompt tokens, measure the noise
band on the control, find the first divergence, check a quantized candidate's weights, draw the plot.

A request (JSON-able, so bisect can hand it to a worker process)::

    {"reference": SIDE, "candidate": SIDE, "control": SIDE | None,
     "prompts": [{"id": ..., "text": ...}], "truncate_prompt_tokens": 4094,
     "weights_reference": SIDE | None,          # the unquantized model for Phase 4a's weight check
     "plot": "<path>.png" | None, "title": str}
    SIDE = {"backend": name, "model": dir, "config": overlay, "plugins": [...], "label": str}

The prompts are tokenized once, by the reference's tokenizer exactly as the engines tokenize them
(harness/backends/hf/generate.py ``encode_prompts``), and the same ids go to every model. The result is
the ``localization`` section of bisect's summary.json (harness/bisect/report/SCHEMA.md) without the graph
view; ``timings`` holds how long each part took.
"""
from __future__ import annotations

import time

from harness.analysis.localize import band as bandmod
from harness.analysis.localize.layerwise import compare_models


def unavailable(request: dict) -> str | None:
    """Why the layer-wise comparison cannot run for this request (a backend without capture), or None."""
    from harness.backends import capabilities

    for role in ("reference", "candidate", "control"):
        side = request.get(role)
        if side and not capabilities(side["backend"]).supports_activation_capture:
            return (f"the {role} backend {side['backend']!r} does not run the model's modules in this process, so "
                    "activations cannot be captured at module boundaries; the layer-wise comparison is not available "
                    "(AD's graph dumps show what the culprit rewrote)")
    return None


def open_side(side: dict):
    from harness.backends import get_backend

    return get_backend(side["backend"]).activations(side["model"], dict(side.get("config") or {}),
                                                    {"plugins": list(side.get("plugins") or [])})


def tokenize(model, prompts: list[dict], truncate: int | None) -> list:
    import torch

    from harness.backends.hf.generate import encode_prompts

    ids = encode_prompts(model.tokenizer, [p["text"] for p in prompts], truncate)
    return [torch.tensor([x], dtype=torch.long) for x in ids]


def run_request(request: dict) -> dict:
    """The localization of ``request`` (see the module doc)."""
    why = unavailable(request)
    if why:
        return {"ran": False, "available": False, "note": why}
    t0 = time.perf_counter()
    timings = {}
    ref = open_side(request["reference"])
    ids = tokenize(ref, request["prompts"], request.get("truncate_prompt_tokens"))
    rows, control_rows, cand_weights = _compare(request, ref, ids, timings)
    t1 = time.perf_counter()
    bands_ = bandmod.bands(control_rows)
    rows = bandmod.annotate(rows, bands_)
    first = bandmod.first_divergence(rows)
    control = request.get("control")
    out = {"ran": True, "available": True,
           "reference": request["reference"].get("label"), "candidate": request["candidate"].get("label"),
           "control": control.get("label") if control else None,
           "prompts": [{"id": p.get("id"), "tokens": int(t.shape[1])} for p, t in zip(request["prompts"], ids)],
           "first_divergence": _public(first),
           "finding": bandmod.describe(first, rows, control.get("label") if control else None),
           "band": {"margin": bandmod.MARGIN, "floor": bandmod.FLOOR, "default": bandmod.DEFAULT_BAND,
                    "measured_on": control.get("label") if control else None},
           "modules": [_clean_row(r) for r in rows]}
    out["weights"] = _weights(request, ref, cand_weights)
    ref.close()
    if request.get("plot"):
        from harness.analysis.localize.plot import plot_divergence

        out["plot"] = plot_divergence(rows, first, request["plot"], request.get("title") or "")
    timings.update({"analysis_s": round(time.perf_counter() - t1, 3), "total_s": round(time.perf_counter() - t0, 3)})
    out["timings"] = timings
    return out


def _compare(request: dict, ref, ids, timings: dict):
    """(candidate rows, control rows or None, the candidate's linear weights)."""
    t = time.perf_counter()
    cand = open_side(request["candidate"])
    timings["load_s"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    rows = compare_models(ref, cand, ids)
    cand_weights = cand.linear_weights()
    cand.close()
    timings["candidate_s"] = round(time.perf_counter() - t, 3)
    control_rows = None
    if request.get("control"):
        t = time.perf_counter()
        control = open_side(request["control"])
        control_rows = compare_models(ref, control, ids)
        control.close()
        timings["control_s"] = round(time.perf_counter() - t, 3)
    return rows, control_rows, cand_weights


def _weights(request: dict, ref, cand_weights: dict) -> dict:
    """Phase 4a step 2 when the candidate has quantized linears; else why not."""
    from harness.analysis.localize.weights import compare_weights

    if not any(e.get("kind") != "dense" for e in cand_weights.values()):
        return {"ran": False, "note": "the candidate has no quantized linear layer"}
    source = request.get("weights_reference")
    if source:
        base = open_side(source)
        ref_weights, label = base.linear_weights(), source.get("label") or source["model"]
        base.close()
    else:
        ref_weights, label = ref.linear_weights(), request["reference"].get("label")
    out = compare_weights(ref_weights, cand_weights)
    return {"ran": True, "against": label, **out}


def _public(first: dict | None) -> dict | None:
    if first is None:
        return None
    return {"module": first["module"], "layer": first["layer"], "kind": first["kind"], "role": first["role"],
            "metric": first["metric"], "band": first["band"], "band_source": first["band_source"]}


def _clean_row(row: dict) -> dict:
    out = {k: v for k, v in row.items() if k != "notes"}
    if row.get("notes"):
        out["notes"] = row["notes"]
    return out
