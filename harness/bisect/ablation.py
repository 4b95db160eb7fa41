"""Declarative ablation plans (``ablations/*.yaml``): which knobs to search, in which order, which to keep.

A plan replaces the default knob list (every strippable knob of the full config, pipeline
order). Schema (all keys optional except ``knobs``)::

    description: one line shown in the report
    knobs:                 # the search space, matched against the knobs of the full config
      - fuse_rmsnorm       #   an exact knob name (a transform, compile_backend or world_size)
      - category: fusion   #   every knob of a category (fusion, quant_fusion, multi_stream, sharding, compile)
      - pattern: "fuse_.*" #   every knob whose name fully matches a regex
    order: pipeline        # pipeline (AD stage order, default) | listed (the order written above)
    keep: [compile_backend]  # knobs held at their full value in every evaluation (never stripped)
    others: strip          # strip (default) | keep: strippable knobs named by neither list
    strategy: linear       # optional default strategy; --strategy on the command line wins

See ablations/README.md for the shipped plans.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import load_yaml
from harness.config.catalogue import Knob
from harness.errors import HarnessError

ORDERS = ("pipeline", "listed")
OTHERS = ("strip", "keep")
KEYS = ("description", "knobs", "order", "keep", "others", "strategy", "name")


@dataclass
class Ablation:
    source: str
    knobs: list = field(default_factory=list)  # raw selectors
    order: str = "pipeline"
    keep: list = field(default_factory=list)
    others: str = "strip"
    strategy: str | None = None
    description: str = ""

    def to_dict(self) -> dict:
        return {"source": self.source, "knobs": self.knobs, "order": self.order, "keep": self.keep,
                "others": self.others, "strategy": self.strategy, "description": self.description}


def load_ablation(path: str | Path) -> Ablation:
    data = load_yaml(path, "ablation plan")
    src = str(path)
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        raise HarnessError(f"ablation plan {src!r} has unknown key {unknown[0]!r}; valid keys: {', '.join(KEYS)}.")
    if not isinstance(data.get("knobs"), list) or not data["knobs"]:
        raise HarnessError(f"ablation plan {src!r} needs a non-empty list under 'knobs' (names, "
                           "{category: C} or {pattern: REGEX}); see ablations/README.md.")
    order = data.get("order", "pipeline")
    if order not in ORDERS:
        raise HarnessError(f"ablation plan {src!r}: order {order!r} is not one of {', '.join(ORDERS)}.")
    others = data.get("others", "strip")
    if others not in OTHERS:
        raise HarnessError(f"ablation plan {src!r}: others {others!r} is not one of {', '.join(OTHERS)}.")
    keep = data.get("keep") or []
    if not isinstance(keep, list):
        raise HarnessError(f"ablation plan {src!r}: 'keep' must be a list of knob names.")
    strategy = data.get("strategy")
    if strategy is not None and strategy not in ("adaptive", "linear"):
        raise HarnessError(f"ablation plan {src!r}: strategy {strategy!r} is not one of adaptive, linear.")
    return Ablation(src, list(data["knobs"]), order, list(keep), others, strategy, str(data.get("description", "")))


def _select(selector, knobs: list[Knob], src: str) -> list[Knob]:
    names = [k.name for k in knobs]
    if isinstance(selector, str):
        hit = [k for k in knobs if k.name == selector]
        if not hit:
            import difflib

            close = difflib.get_close_matches(selector, names, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise HarnessError(f"ablation plan {src!r} names knob {selector!r}, which is not a knob of this config."
                               f"{hint} Knobs: {', '.join(names) or '(none)'}")
        return hit
    if isinstance(selector, dict) and len(selector) == 1 and "category" in selector:
        return [k for k in knobs if k.category == selector["category"]]
    if isinstance(selector, dict) and len(selector) == 1 and "pattern" in selector:
        try:
            rx = re.compile(str(selector["pattern"]))
        except re.error as exc:
            raise HarnessError(f"ablation plan {src!r}: bad regex {selector['pattern']!r}: {exc}.") from None
        return [k for k in knobs if rx.fullmatch(k.name)]
    raise HarnessError(f"ablation plan {src!r}: selector {selector!r} must be a knob name, "
                       "{category: NAME} or {pattern: REGEX}.")


def apply_ablation(ablation: Ablation, knobs: list[Knob]) -> tuple[list[Knob], list[Knob], list[Knob]]:
    """(searched, stripped_only, kept) knob lists for a full config's knobs (pipeline order)."""
    kept: list[Knob] = []
    for sel in ablation.keep:
        for k in _select(sel, knobs, ablation.source):
            if k not in kept:
                kept.append(k)
    searched: list[Knob] = []
    for sel in ablation.knobs:
        for k in _select(sel, knobs, ablation.source):
            if k not in searched and k not in kept:
                searched.append(k)
    if ablation.order == "pipeline":
        searched = [k for k in knobs if k in searched]
    rest = [k for k in knobs if k not in searched and k not in kept]
    if ablation.others == "keep":
        return searched, [], kept + rest
    return searched, rest, kept
