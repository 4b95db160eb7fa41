"""The bisect plan: which phases run, which knobs are searched (with categories), and how many
evaluations the run can cost at worst. ``--dry-run`` prints it without evaluating anything.

Knobs come from ``harness.config.knobs_of`` (every strippable knob the full config switches on,
from the default.yaml in force, in AD's pipeline order) or from an ablation plan
(``harness.bisect.ablation``). Sharding transforms act only at world_size > 1, so when the
``world_size`` knob is searched they *require* it: switching one on switches world_size to its
full value too (``Plan.closure``).

A knob whose transform had no effect on this model in the full candidate run -- the engine reported it
``skipped`` or matched 0 sites (``info["transforms"]``, harness/bisect/effects.py) -- is pruned before
the search (``Plan.prune_no_effect``): it stays off in the minimal config and in every probe, and the
plan lists it under "no effect on this model" with the engine's evidence. Each real AD evaluation is a
model build, so a knob that changes nothing is not worth a probe.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.bisect.ablation import Ablation, apply_ablation
from harness.bisect.effects import status_of
from harness.bisect.search import default_budget, expected_probes
from harness.config import Catalogue, knobs_of, resolve
from harness.config.catalogue import Knob


@dataclass
class PhasePlan:
    id: str  # "0", "1-2", "3", "search", "6", "4a", "4c", "5"
    title: str
    runs: bool  # False: skipped for this input (the reason is in note)
    worst: int  # new evaluations at worst (no retries)
    note: str = ""

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "runs": self.runs, "worst_evaluations": self.worst, "note": self.note}


@dataclass
class Plan:
    strategy: str
    knobs: list[Knob]  # searched, in search order
    stripped: list[Knob] = field(default_factory=list)  # stripped in the minimal config, never searched
    kept: list[Knob] = field(default_factory=list)  # held at the full value everywhere
    requires: dict[str, list[str]] = field(default_factory=dict)
    bundles: dict[str, list[str]] = field(default_factory=dict)  # knob -> stripped knobs switched with it
    phases: list[PhasePlan] = field(default_factory=list)
    world_size: int = 1
    quantized: bool = False
    ablation: Ablation | None = None
    no_effect: list[dict] = field(default_factory=list)  # pruned: {name, category, status, num_matches, evidence}
    ladder: list[dict] = field(default_factory=list)  # core-path rungs (harness/bisect/core_path.py)

    # -- knob sets -> configs ---------------------------------------------------------------
    @property
    def knob_names(self) -> list[str]:
        return [k.name for k in self.knobs]

    @property
    def togglable(self) -> list[Knob]:
        """Knobs apply_knobs may set to minimal (searched + stripped)."""
        return self.knobs + self.stripped

    def closure(self, on) -> tuple[str, ...]:
        """``on`` plus every knob a member requires, in search order."""
        out = set(on)
        changed = True
        while changed:
            changed = False
            for k in list(out):
                for r in self.requires.get(k, []):
                    if r not in out:
                        out.add(r)
                        changed = True
        return tuple(n for n in self.knob_names if n in out)

    def full_names(self, on) -> set[str]:
        """Every togglable knob at its full value when the searched knobs ``on`` are (closure + bundles)."""
        out = set(self.closure(on))
        for k in list(out):
            out |= set(self.bundles.get(k, []))
        return out

    def config(self, user: dict, on) -> dict:
        """The user config with the searched knobs ``on`` (plus requirements and bundles) at their full
        value and every other searched or stripped knob at its minimal value."""
        from harness.config import apply_knobs

        return apply_knobs(user, self.togglable, self.full_names(on))

    def without(self, removed) -> tuple[str, ...]:
        """All searched knobs minus ``removed`` and minus the knobs that require a removed one."""
        gone = set(removed)
        return tuple(n for n in self.knob_names
                     if n not in gone and not (set(self.requires.get(n, ())) & gone))

    def knob(self, name: str) -> Knob:
        for k in self.knobs + self.stripped + self.kept:
            if k.name == name:
                return k
        raise KeyError(name)

    def set_ladder(self, rungs: list[dict]) -> None:
        """The core-path rungs the candidate backend offers (harness/bisect/core_path.py), and their phase."""
        self.ladder = list(rungs or [])
        for p in self.phases:
            if p.id == "ladder":
                n = len(self.ladder)
                p.runs, p.worst = n > 0, n
                p.note = (", ".join(f"{r['axis']}={r['value']}" for r in self.ladder)
                          + "; stops at the first that recovers") if n else "no alternative offered by the backend"

    # -- pruning ----------------------------------------------------------------------------
    def prune_no_effect(self, records) -> list[dict]:
        """Move every searched transform knob the full run reports ``skipped`` (nothing to do) out of the
        search, into the stripped knobs (off in the minimal config and in every probe). Returns them."""
        by: dict[str, dict] = {}
        for r in records or []:
            if isinstance(r, dict) and (r.get("transform") or r.get("name")):
                by.setdefault(str(r.get("transform") or r.get("name")), r)
        pruned = []
        for k in list(self.knobs):
            rec = by.get(k.name)
            if k.kind != "transform" or rec is None or status_of(rec) != "skipped":
                continue
            self.knobs.remove(k)
            self.stripped.append(k)
            self.requires.pop(k.name, None)
            pruned.append({"name": k.name, "category": k.category, "status": "skipped",
                           "num_matches": rec.get("num_matches"), "evidence": rec.get("evidence")})
        self.no_effect += pruned
        self._refresh_search_phases()
        return pruned

    def _refresh_search_phases(self) -> None:
        n = len(self.knobs)
        for p in self.phases:
            if p.id == "search":
                p.runs, p.worst = n > 0, default_budget(n) if n else 0
                p.note = "only when minimal recovers" if n else "no knobs to search"
            elif p.id == "6":
                p.runs = n > 0

    # -- counts -----------------------------------------------------------------------------
    @property
    def worst_case(self) -> int:
        """At worst, in evaluations: the search + Phase 6 and the core-path ladder exclude each other
        (the minimal config either recovers or regresses), so only the larger of the two counts."""
        runs = {p.id: p.worst for p in self.phases if p.runs}
        either = max(runs.pop("search", 0) + runs.pop("6", 0), runs.pop("ladder", 0))
        return sum(runs.values()) + either

    def to_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "knobs": [knob_dict(k, self.requires.get(k.name), self.bundles.get(k.name)) for k in self.knobs],
            "stripped_not_searched": [knob_dict(k) for k in self.stripped],
            "no_effect": list(self.no_effect),
            "ladder": [{k: v for k, v in r.items() if k != "config"} for r in self.ladder],
            "kept": [knob_dict(k) for k in self.kept],
            "world_size": self.world_size,
            "quantized": self.quantized,
            "ablation": self.ablation.to_dict() if self.ablation else None,
            "phases": [p.to_dict() for p in self.phases],
            "worst_case_evaluations": self.worst_case,
            "expected_search_evaluations": expected_probes(self.strategy, max(len(self.knobs), 1)),
        }

    def render(self) -> str:
        """The plan as text (what --dry-run prints)."""
        lines = [f"strategy: {self.strategy}; world_size {self.world_size}; "
                 f"{'quantized' if self.quantized else 'not quantized'}"]
        if self.ablation:
            lines.append(f"ablation plan: {self.ablation.source}"
                         + (f" ({self.ablation.description})" if self.ablation.description else ""))
        lines.append(f"knobs searched ({len(self.knobs)}, in search order):")
        for i, k in enumerate(self.knobs, 1):
            req = self.requires.get(k.name)
            extra = f"  (requires {', '.join(req)})" if req else ""
            if self.bundles.get(k.name):
                extra += f"  (switches {', '.join(self.bundles[k.name])} with it)"
            lines.append(f"  {i:2d}. {describe_knob(k)}{extra}")
        bundled = {n for b in self.bundles.values() for n in b}
        pruned = {d["name"] for d in self.no_effect}
        if self.no_effect:
            lines.append(f"no effect on this model, not searched ({len(self.no_effect)}; the full candidate run "
                         "reported them skipped / 0 matches):")
            lines += [f"      {d['name']:<40} {_short(d.get('evidence'))}" for d in self.no_effect]
        loose = [k.name for k in self.stripped if k.name not in bundled and k.name not in pruned]
        if loose:
            lines.append("stripped in the minimal config, not searched: " + ", ".join(loose))
        if self.kept:
            lines.append("kept at their full value: " + ", ".join(k.name for k in self.kept))
        lines.append("phases:")
        for p in self.phases:
            state = f"<= {p.worst} evaluations" if p.runs else "skipped"
            lines.append(f"  {p.id:>6}  {p.title:<44} {state}" + (f"  - {p.note}" if p.note else ""))
        exp = expected_probes(self.strategy, max(len(self.knobs), 1))
        lines.append(f"worst case: {self.worst_case} evaluations (each unresolved one is retried once; an "
                     "inconclusive step may be re-run once with more samples plus one reference run)")
        lines.append(f"search, expected: one culprit ~{exp['one_culprit']}, two culprits ~{exp['two_culprits']}, "
                     f"an interacting pair ~{exp['pair']} evaluations; the search stops at {exp['worst']}")
        return "\n".join(lines)


def _short(evidence, width: int = 90) -> str:
    text = str(evidence or "")
    if "[stage=" in text:
        text = text[text.index("]", text.index("[stage=")) + 1:].strip()
    return text[:width]


def describe_knob(k: Knob) -> str:
    if k.kind == "transform":
        return f"{k.name:<40} {k.category:<13} stage {k.stage}"
    return f"{k.name:<40} {k.category:<13} {k.full} -> minimal {k.minimal}"


def knob_dict(k: Knob, requires=None, bundle=None) -> dict:
    d = {"name": k.name, "kind": k.kind, "category": k.category, "stage": k.stage, "full": k.full,
         "minimal": k.minimal}
    if requires:
        d["requires"] = list(requires)
    if bundle:
        d["switches"] = list(bundle)
    return d


def allreduce_transforms(resolved: dict) -> dict[str, str]:
    """Transforms with an ``allreduce_strategy`` option in the resolved config -> current value."""
    return {n: str(c["allreduce_strategy"]) for n, c in (resolved.get("transforms") or {}).items()
            if isinstance(c, dict) and "allreduce_strategy" in c}


def _bundle_sharding(searched: list[Knob], stripped: list[Knob]):
    """(searched, stripped, requires, bundles) with the sharding path switched by the world_size knob.

    The sharding-stage transforms (detect_sharding, sharding_transform_executor, apply_sharding_hints)
    are the sharding path itself: at world_size 1 they are no-ops (detect_sharding logs "Skipping
    sharding for single device" and returns skipped: NVIDIA/TensorRT-LLM
    tensorrt_llm/_torch/auto_deploy/transform/library/sharding.py@03dd9bb8) and at world_size N they
    only work together. They switch with the world_size knob; other sharding-category transforms
    (fuse_allreduce_*) are knobs of their own that require it.
    """
    requires: dict[str, list[str]] = {}
    bundles: dict[str, list[str]] = {}
    if "world_size" not in [k.name for k in searched]:
        return searched, stripped, requires, bundles
    core = [k for k in searched if k.kind == "transform" and k.category == "sharding" and k.stage == "sharding"]
    if core:
        bundles["world_size"] = [k.name for k in core]
        searched = [k for k in searched if k not in core]
        stripped = stripped + core
    for k in searched:
        if k.kind == "transform" and k.category == "sharding":
            requires[k.name] = ["world_size"]
    return searched, stripped, requires, bundles


def build_plan(catalogue: Catalogue, user: dict, strategy: str = "adaptive", ablation: Ablation | None = None,
               quantized: bool = False, unquantized_model: bool = False, aa_repeats: int = 0,
               ladder: list[dict] | None = None) -> Plan:
    """The plan for bisecting the full config ``user`` (an overlay on ``catalogue``'s default.yaml).

    ``ladder``: the core-path rungs the candidate backend offers (``Backend.core_alternatives``), tried
    one at a time when the minimal config still regresses."""
    all_knobs = knobs_of(catalogue, user)
    if ablation is not None:
        searched, stripped, kept = apply_ablation(ablation, all_knobs, catalogue, resolve(catalogue, user))
    else:
        searched, stripped, kept = list(all_knobs), [], []
    searched, stripped, requires, bundles = _bundle_sharding(searched, stripped)
    full = resolve(catalogue, user)
    ws = int(full.get("world_size") or 1)
    plan = Plan(strategy, searched, stripped, kept, requires, bundles, world_size=ws, quantized=quantized,
                ablation=ablation, ladder=list(ladder or []))
    plan.phases = _phases(plan, full, unquantized_model, aa_repeats)
    return plan


def _phases(plan: Plan, full: dict, unquantized_model: bool, aa_repeats: int) -> list[PhasePlan]:
    n, ws, quantized, strategy = len(plan.knobs), plan.world_size, plan.quantized, plan.strategy
    ar = allreduce_transforms(full)
    sizes = [w for w in (1, 2) if w < ws]
    p4c = len(sizes) + (1 if ar and any(v != "NCCL" for v in ar.values()) else 0)
    rungs = len(plan.ladder)
    return [
        PhasePlan("0", "validate the harness (reference run, checks)", True, 1 + max(0, aa_repeats),
                  f"{aa_repeats} A/A repeat(s) of the reference" if aa_repeats else "prompt identity, format, accuracy"),
        PhasePlan("1-2", "candidate vs reference, paired verdict, label", True, 1),
        PhasePlan("3", "strip to minimal", True, 1, f"{len(plan.knobs) + len(plan.stripped)} knobs stripped"),
        PhasePlan("search", f"search ({strategy})", n > 0, default_budget(n) if n else 0,
                  "only when minimal recovers" if n else "no knobs to search"),
        PhasePlan("6", "confirm both ways", n > 0, 2, "full minus culprits recovers; minimal plus culprits regresses"),
        PhasePlan("4a", "quantization: unquantized baseline, fake-quant", quantized,
                  (1 + (2 if unquantized_model else 0)) if quantized else 0,
                  ("" if unquantized_model else "no --unquantized-model: fake-quant only") if quantized
                  else "model and config are not quantized"),
        PhasePlan("4c", "world size ladder and allreduce NCCL", ws > 1, p4c if ws > 1 else 0,
                  f"world_size {', '.join(map(str, sizes + [ws]))}" + ("; allreduce_strategy NCCL" if p4c > len(sizes) else "")
                  if ws > 1 else "world_size 1"),
        PhasePlan("5", "per-subject breakdown of the decisive comparison", True, 0, "analysis only"),
        PhasePlan("ladder", "core-path ladder (only when minimal still regresses)", rungs > 0, rungs,
                  ", ".join(f"{r['axis']}={r['value']}" for r in plan.ladder) + "; stops at the first that recovers"
                  if rungs else "no alternative core path offered by the backend"),
    ]
