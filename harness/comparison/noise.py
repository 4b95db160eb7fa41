"""The A/A noise floor: how far two runs of the *same* config drift apart when the engine is not
deterministic (``bisect --aa-repeats K``: the reference evaluated K more times).

A verdict never calls a change that the floor explains: an effect no larger than the largest A/A
difference on its route (expected accuracy or accuracy) is at most ``inconclusive``, and the KL
diagnostic's tolerance is raised to the A/A quantile. Cross-engine noise (AD vs PT on every
config) is a different thing: it is part of every paired comparison's per-sample variance, so the
paired tests account for it directly (docs/method.md, "Statistics").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.errors import HarnessError


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class NoiseFloor:
    """Measured spread between runs of the same config (A/A)."""

    kl_runs: list[list[float]] = field(default_factory=list)  # per A/A comparison: per-sample KL
    acc_diffs: list[float] = field(default_factory=list)  # per A/A comparison: accuracy diff, points
    ea_diffs: list[float] = field(default_factory=list)  # per A/A comparison: expected-accuracy diff, points

    @property
    def n_runs(self) -> int:
        return max(len(self.kl_runs), len(self.acc_diffs), len(self.ea_diffs))

    def pooled_kl(self) -> list[float]:
        return [x for run in self.kl_runs for x in run if x is not None and not math.isnan(x)]

    def kl_quantile(self, q: float) -> float | None:
        pooled = self.pooled_kl()
        if not pooled:
            return None
        import numpy as np

        value = float(np.quantile(np.asarray(pooled, dtype=float), q))
        return value if math.isfinite(value) else None

    def acc_floor(self) -> float | None:
        return _largest(self.acc_diffs)

    def ea_floor(self) -> float | None:
        return _largest(self.ea_diffs)

    def floor(self, route: str) -> float | None:
        """The largest A/A difference (points) on an evidence route ("accuracy" | "expected_accuracy")."""
        return self.ea_floor() if route == "expected_accuracy" else self.acc_floor()

    def to_dict(self) -> dict:
        return {"n_runs": self.n_runs, "acc_diffs_points": self.acc_diffs, "ea_diffs_points": self.ea_diffs,
                "kl_samples": len(self.pooled_kl()), "kl_p95": self.kl_quantile(0.95),
                "kl_max": max(self.pooled_kl(), default=None), "acc_floor_points": self.acc_floor(),
                "ea_floor_points": self.ea_floor()}

    @classmethod
    def from_any(cls, noise) -> "NoiseFloor | None":
        """Accept a NoiseFloor, a Comparison, a to_dict() of one, a list of per-sample KL values,
        or a list of any of these (one entry per A/A repeat)."""
        if noise is None:
            return None
        if isinstance(noise, NoiseFloor):
            return noise
        items = noise if isinstance(noise, (list, tuple)) else [noise]
        if items and all(isinstance(x, (int, float)) for x in items):
            items = [list(items)]  # one flat list of per-sample divergences
        floor = cls()
        for item in items:
            floor._add(item)
        return floor

    def _add(self, item) -> None:
        """Add one A/A repeat (see from_any)."""
        if isinstance(item, NoiseFloor):
            self.kl_runs += item.kl_runs
            self.acc_diffs += item.acc_diffs
            self.ea_diffs += item.ea_diffs
        elif hasattr(item, "to_dict") and hasattr(item, "verdict"):  # a Comparison
            self._add(item.to_dict(per_sample=True))
        elif isinstance(item, dict):
            self._add_comparison_dict(item)
        elif isinstance(item, (list, tuple)):
            self.kl_runs.append([float(x) for x in item])
        else:
            raise HarnessError(f"A/A noise entry of type {type(item).__name__} not understood; pass Comparisons, "
                               f"their to_dict(), or lists of per-sample KL values")

    def _add_comparison_dict(self, item: dict) -> None:
        if item.get("verdict") == "unresolved":
            return
        per_sample = item.get("per_sample") or []
        kl_values = [float(d["kl"]) if _finite(d.get("kl")) else math.inf for d in per_sample
                     if d.get("status") in ("ok", "nonfinite_ref", "nonfinite_cand")]
        if kl_values:
            self.kl_runs.append(kl_values)
        acc_diff = (item.get("accuracy") or {}).get("diff_points")
        if _finite(acc_diff):
            self.acc_diffs.append(float(acc_diff))
        ea_diff = (item.get("expected_accuracy") or {}).get("estimate_points")
        if _finite(ea_diff):
            self.ea_diffs.append(float(ea_diff))


def _largest(values: list[float]) -> float | None:
    finite = [abs(x) for x in values if _finite(x)]
    return max(finite) if finite else None
