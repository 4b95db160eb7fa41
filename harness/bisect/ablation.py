"""Declarative ablation plans (``ablations/*.yaml``): which knobs to search, in which order, which to keep.

A plan replaces the default knob list (every strippable knob of the full config, pipeline
order). Schema (all keys optional except ``knobs``)::

    description: one line shown in the report
    knobs:                 # the search space, matched against the knobs of the full config
      - fuse_rmsnorm       #   an exact knob name (a transform, compile_backend or world_size)
      - category: fusion   #   every knob of a category (fusion, quant_fusion, multi_stream, sharding, compile)
      - pattern: "fuse_.*" #   every knob whose name fully matches a regex
      - {pattern: "match_.*attention.*", include_keep: true}  # also transforms of category keep
                           #   (named explicitly or with include_keep; to investigate a core path)
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


def _select(selector, knobs: list[Knob], src: str, extra: dict[str, Knob] | None = None) -> list[Knob]:
    names = [k.name for k in knobs]
    if isinstance(selector, str):
        hit = [k for k in knobs if k.name == selector]
        if not hit and extra and selector in extra:
            return [extra[selector]]
        if not hit:
            import difflib

            close = difflib.get_close_matches(selector, names, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise HarnessError(f"ablation plan {src!r} names knob {selector!r}, which is not a knob of this config."
                               f"{hint} Knobs: {', '.join(names) or '(none)'}")
        return hit
    if isinstance(selector, dict) and len(selector) == 1 and "category" in selector:
        return [k for k in knobs if k.category == selector["category"]]
    if isinstance(selector, dict) and "pattern" in selector and set(selector) <= {"pattern", "include_keep"}:
        try:
            rx = re.compile(str(selector["pattern"]))
        except re.error as exc:
            raise HarnessError(f"ablation plan {src!r}: bad regex {selector['pattern']!r}: {exc}.") from None
        pool = list(knobs) + (list((extra or {}).values()) if selector.get("include_keep") else [])
        return [k for k in pool if rx.fullmatch(k.name)]
    raise HarnessError(f"ablation plan {src!r}: selector {selector!r} must be a knob name, "
                       "{category: NAME} or {pattern: REGEX[, include_keep: true]}.")


def keep_transform_knobs(catalogue, full: dict, knobs: list[Knob]) -> dict[str, Knob]:
    """Transforms that are on in the full config but not strippable (category keep): an ablation plan
    may name them explicitly to investigate one (e.g. an attention pattern matcher after Phase 3
    reported a core-path bug). Disabling them may break the pipeline; the evaluation then says so."""
    if catalogue is None or full is None:
        return {}
    have = {k.name for k in knobs}
    out = {}
    for name, conf in (full.get("transforms") or {}).items():
        if name in have or not (conf or {}).get("enabled", True) or catalogue.category_of(name) != "keep":
            continue
        out[name] = Knob(name, "transform", catalogue.category_of(name), catalogue.stage_of(name), True, False)
    return out


def apply_ablation(ablation: Ablation, knobs: list[Knob], catalogue=None, full: dict | None = None
                   ) -> tuple[list[Knob], list[Knob], list[Knob]]:
    """(searched, stripped_only, kept) knob lists for a full config's knobs (pipeline order).

    Explicitly named transforms that are not strippable (category keep) join the search when the
    catalogue and the resolved full config are given."""
    extra = keep_transform_knobs(catalogue, full, knobs)
    kept: list[Knob] = []
    for sel in ablation.keep:
        for k in _select(sel, knobs, ablation.source):
            if k not in kept:
                kept.append(k)
    searched: list[Knob] = []
    for sel in ablation.knobs:
        for k in _select(sel, knobs, ablation.source, extra):
            if k not in searched and k not in kept:
                searched.append(k)
    if not searched:
        raise HarnessError(f"ablation plan {ablation.source!r} selects no knob of this config; knobs: "
                           f"{', '.join(k.name for k in knobs) or '(none)'}. Edit its 'knobs' list.")
    if ablation.order == "pipeline":
        order = catalogue.ordered([k.name for k in searched if k.kind == "transform"]) if catalogue else []
        pos = {n: i for i, n in enumerate(order)}
        base = [k for k in knobs if k in searched]
        added = [k for k in searched if k not in knobs]
        if added:  # keep-category transforms: merge by pipeline position, other knobs keep their place
            merged = sorted([k for k in base + added if k.kind == "transform"], key=lambda k: pos.get(k.name, 1 << 20))
            searched = [k for k in base if k.kind == "world_size"] + merged + \
                [k for k in base if k.kind not in ("transform", "world_size")]
        else:
            searched = base
    rest = [k for k in knobs if k not in searched and k not in kept]
    if ablation.others == "keep":
        return searched, [], kept + rest
    return searched, rest, kept
