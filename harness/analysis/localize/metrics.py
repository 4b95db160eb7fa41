"""Divergence of one module's output between two runs, accumulated over prompts.

Over every element of every prompt (flattened float32 vectors ``r`` reference, ``c`` candidate):

* ``rel_err``  = ||c - r|| / ||r||   (the deciding metric: scale-free, comparable across modules);
* ``cosine``   = <c, r> / (||c|| ||r||);
* ``max_abs``  = max |c - r|.

Non-finite candidate values are counted (``nonfinite``) and make ``rel_err`` infinite; JSON carries
them as null with the count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Accumulator:
    d2: float = 0.0  # sum (c - r)^2
    r2: float = 0.0  # sum r^2
    c2: float = 0.0  # sum c^2
    dot: float = 0.0  # sum c * r
    max_abs: float = 0.0
    n: int = 0
    nonfinite: int = 0
    mismatch: str | None = None  # shapes that could not be compared

    def add(self, ref, cand) -> None:
        """Add one prompt's flattened outputs (torch float32 vectors)."""
        import torch

        if ref is None or cand is None or ref.numel() != cand.numel():
            self.mismatch = f"{None if ref is None else ref.numel()} vs {None if cand is None else cand.numel()} values"
            return
        bad = ~torch.isfinite(cand)
        self.nonfinite += int(bad.sum())
        cand = torch.where(bad, torch.zeros_like(cand), cand)
        ref = torch.where(torch.isfinite(ref), ref, torch.zeros_like(ref))
        d = (cand - ref).double()
        self.d2 += float(d.pow(2).sum())
        self.r2 += float(ref.double().pow(2).sum())
        self.c2 += float(cand.double().pow(2).sum())
        self.dot += float((cand.double() * ref.double()).sum())
        self.max_abs = max(self.max_abs, float(d.abs().max()) if d.numel() else 0.0)
        self.n += int(ref.numel())

    def result(self) -> dict | None:
        """{"rel_err", "cosine", "max_abs", "nonfinite"}; None when nothing was compared."""
        if self.n == 0:
            return None
        if self.nonfinite:
            rel = math.inf
        elif self.r2 > 0:
            rel = math.sqrt(self.d2 / self.r2)
        else:
            rel = 0.0 if self.d2 == 0 else math.inf
        denom = math.sqrt(self.r2 * self.c2)
        cos = self.dot / denom if denom > 0 else (1.0 if self.d2 == 0 else 0.0)
        return {"rel_err": rel, "cosine": max(-1.0, min(1.0, cos)), "max_abs": self.max_abs,
                "nonfinite": self.nonfinite}


def exceeds(metric: dict | None, band: float) -> bool:
    """The metric's relative error is beyond ``band`` (non-finite values always are)."""
    if not metric:
        return False
    return bool(metric.get("nonfinite")) or not math.isfinite(metric["rel_err"]) or metric["rel_err"] > band
