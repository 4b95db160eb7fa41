"""The noise band and the first divergence.

Two engines never agree bit for bit (docs/method.md, "Statistics"), so every module differs from the
reference a little, and by different amounts: a decoder layer's output carries the engine pair's
per-layer noise, a projection inside it none, the LM head the heavy tail (the ad-emulator's
``engine_noise``, configs/emulator/FAULTS.md "Cross-engine noise"). The band is therefore measured,
per module, on a **control**: a configuration of the candidate engine judged reference-like (bisect's
minimal config, judged the same as the reference), compared with the reference exactly as the
candidate is. A module's band is ``MARGIN`` times the control's error there, never below ``FLOOR``
(float32 summation-order differences). Without a control the band is ``DEFAULT_BAND`` everywhere and
the result says the band was not measured.

The **first divergence** is the first module, in the reference's completion order, whose *isolated*
error exceeds its band: the module that introduces the error. When no module's isolated error does
but a propagated one does (the error enters between modules, e.g. in glue code no module owns), the
first module whose *propagated* error exceeds its band is reported, with kind "propagated".
"""
from __future__ import annotations

import math

from harness.analysis.localize.metrics import exceeds

MARGIN = 3.0  # the control's error times this: independent noise draws of the same size stay inside
FLOOR = 1e-4  # relative error: float32 accumulation-order differences are about 1e-7
DEFAULT_BAND = 1e-2  # no control: a relative error of 1 % (not measured)


def bands(control_rows: list[dict] | None) -> dict[str, dict]:
    """{module: {"isolated": band, "propagated": band, "source": "control" | "default"}}."""
    out = {}
    for row in control_rows or []:
        entry = {"source": "control"}
        for kind in ("isolated", "propagated"):
            metric = row.get(kind)
            rel = metric.get("rel_err") if metric else None
            entry[kind] = max(FLOOR, MARGIN * rel) if rel is not None and math.isfinite(rel) else None
        out[row["module"]] = entry
    return out


def band_for(bands_: dict[str, dict], module: str, kind: str) -> tuple[float, str]:
    entry = bands_.get(module)
    if entry and entry.get(kind) is not None:
        return entry[kind], entry["source"]
    return DEFAULT_BAND, "default"


def annotate(rows: list[dict], bands_: dict[str, dict]) -> list[dict]:
    """Each row with its bands and whether its errors exceed them (in place; returned)."""
    for row in rows:
        for kind in ("isolated", "propagated"):
            band, source = band_for(bands_, row["module"], kind)
            row[f"band_{kind}"] = band
            row[f"band_source"] = source
            row[f"exceeds_{kind}"] = exceeds(row.get(kind), band)
    return rows


def first_divergence(rows: list[dict]) -> dict | None:
    """``{module, layer, role, kind, metric, band}`` of the first divergence in annotated rows, or None."""
    for kind in ("isolated", "propagated"):
        for row in rows:
            if row.get(f"exceeds_{kind}"):
                return {"module": row["module"], "layer": row["layer"], "role": row["role"], "kind": kind,
                        "metric": dict(row[kind]), "band": row[f"band_{kind}"], "band_source": row["band_source"]}
    return None


def describe(first: dict | None, rows: list[dict], control_label: str | None) -> str:
    """One sentence: where the candidate first leaves the noise band, or that it never does."""
    source = f"measured on {control_label}" if control_label else "(no reference-like control to measure it on)"
    if first is None:
        band = f"the noise band {source}" if control_label else f"a default band of {DEFAULT_BAND:g} {source}"
        return (f"no module leaves {band}: over {len(rows)} modules the candidate matches the reference "
                "within the engine pair's noise")
    m = first["metric"]
    rel = "non-finite values" if m.get("nonfinite") or not math.isfinite(m["rel_err"]) else \
        f"relative error {m['rel_err']:.3g} (cosine {m['cosine']:.4f}, max abs {m['max_abs']:.3g})"
    where = f"{first['module']}" + (f" (layer {first['layer']}, {first['role']})" if first["layer"] is not None
                                    else f" ({first['role']})")
    band = f"{'a noise' if control_label else 'a default'} band of {first['band']:.3g} {source}"
    if first["kind"] == "isolated":
        return (f"first divergence: {where}: fed the reference's inputs it gives {rel}, against {band}; "
                "no module before it introduces an error")
    return (f"first divergence (propagated): {where}: {rel} end to end against {band}; "
            "no module introduces it on the reference's inputs, so it enters between modules")
