"""Phase 4a step 2 on a quantized model: each linear layer's weight as the kernel path dequantizes it,
against the unquantized reference weight (docs/method.md, "4a quantized kernels and fake-quant").

Per layer: relative error ||W_kernel - W_ref|| / ||W_ref||, cosine, and the least-squares ratio
<W_kernel, W_ref> / <W_ref, W_ref>. A correct FP8 e4m3 per-tensor quantization keeps every element
within half a step of 3 mantissa bits (2^-4 relative), so its relative error stays below
``TOLERANCE``; a layer is flagged beyond that, or when its error is ``OUTLIER`` times the layers'
median (far outside the rest). The suspect follows the method's table:

* cosine near 1 and a ratio far from 1: one scale wrong for the whole tensor: missing (ratio 1/s) or
  inverted (ratio 1/s^2), named when the kernel's scale s is known;
* cosine clearly below 1 but positive: parts of the tensor scaled wrongly (a block-scale error);
* cosine near 0: the values do not resemble the reference (bytes converted with ``.to`` where
  ``.view`` reinterprets them).
"""
from __future__ import annotations

import math
import statistics

TOLERANCE = 0.1  # relative error a correct per-tensor FP8 (e4m3) quantization stays below (2^-4 per element)
OUTLIER = 10.0  # times the median relative error of all layers
MIN_OUTLIER = 0.02  # an outlier must also be at least this far off


def compare_weights(ref: dict[str, dict], cand: dict[str, dict]) -> dict:
    """{"layers": [...], "flagged": [...], "median_rel_err", "quantized"} for layers present in both."""
    rows = []
    for name, entry in cand.items():
        if name not in ref:
            continue
        rows.append(_row(name, entry, ref[name]["weight"]))
    finite = [r["rel_err"] for r in rows if r["rel_err"] is not None and math.isfinite(r["rel_err"])]
    median = statistics.median(finite) if finite else None
    for r in rows:
        r["flagged"] = _flag(r, median)
        r["suspect"] = _suspect(r) if r["flagged"] else None
    flagged = [r["module"] for r in rows if r["flagged"]]
    quantized = sum(1 for e in cand.values() if e.get("kind") != "dense")
    return {"layers": rows, "flagged": flagged, "median_rel_err": median, "quantized_layers": quantized,
            "tolerance": TOLERANCE, "outlier_factor": OUTLIER}


def _row(name: str, entry: dict, ref_w) -> dict:
    import torch

    w = entry["weight"].double()
    r = ref_w.double()
    if w.shape != r.shape:
        return {"module": name, "kind": entry.get("kind"), "scale": entry.get("scale"), "rel_err": None,
                "cosine": None, "ratio": None, "note": f"shape {tuple(w.shape)} vs reference {tuple(r.shape)}"}
    finite = bool(torch.isfinite(w).all())
    rn = float(r.norm())
    rel = float((w - r).norm()) / rn if finite and rn > 0 else math.inf
    cos = float((w * r).sum() / (w.norm() * r.norm())) if finite and float(w.norm()) > 0 and rn > 0 else 0.0
    ratio = float((w * r).sum() / (r * r).sum()) if finite and rn > 0 else None
    return {"module": name, "kind": entry.get("kind"), "scale": entry.get("scale"), "rel_err": rel,
            "cosine": cos, "ratio": ratio, "note": None if finite else "non-finite values"}


def _flag(row: dict, median: float | None) -> bool:
    rel = row["rel_err"]
    if rel is None:
        return row.get("note") is not None and "shape" in row["note"]
    if not math.isfinite(rel) or rel > TOLERANCE:
        return True
    return median is not None and rel > OUTLIER * median and rel > MIN_OUTLIER


def _near(x: float, target: float, tol: float = 0.1) -> bool:
    return target > 0 and abs(x / target - 1.0) <= tol


def _suspect(row: dict) -> str:
    cos, ratio, scale = row.get("cosine"), row.get("ratio"), row.get("scale")
    if row.get("note"):
        return row["note"]
    if cos is not None and cos > 0.98 and ratio is not None:
        if scale and _near(ratio, 1.0 / scale):
            return f"scale missing at dequantization: the kernel's weight is the reference / scale (x{ratio:.3g})"
        if scale and _near(ratio, 1.0 / scale ** 2):
            return f"scale inverted (divided instead of multiplied): the weight is the reference / scale^2 (x{ratio:.3g})"
        return f"one scale wrong for the whole tensor: the weight is {ratio:.3g} x the reference"
    if cos is not None and cos > 0.3:
        return f"parts of the tensor scaled wrongly (block-scale error?): cosine {cos:.3f} to the reference"
    return (f"the values do not resemble the reference (cosine {cos if cos is None else round(cos, 3)}): packed "
            "bytes converted with .to() where .view() reinterprets them?")
