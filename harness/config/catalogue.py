"""The knob catalogue: every transform of the default.yaml in force, with its stage and category.

The transform list is never typed into the code: it is read from the installed AD
``tensorrt_llm/_torch/auto_deploy/config/default.yaml`` (or the emulator's
``configs/emulator/default.yaml``, which has the same shape). Categories come from the rules in
``configs/knob_categories.yaml``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.config.io import load_yaml
from harness.paths import KNOB_CATEGORIES

# AD's stage order (tensorrt_llm/_torch/auto_deploy/transform/interface.py, Stages enum): the newest stored
# version (cache_init, visualize, export_onnx, compile). @c57d2c55 lacks export_onnx; @01f08360 also runs
# visualize before cache_init (no default.yaml enables a visualize-stage transform, so the order of those
# two never changes what runs).
STAGES = ["factory", "export", "post_export", "pattern_matcher", "sharding", "weight_load",
          "post_load_fusion", "cache_init", "visualize", "export_onnx", "compile"]


@dataclass(frozen=True)
class Knob:
    """One thing bisect can switch between its minimal and its full value."""

    name: str  # transform name, or "compile_backend" / "world_size" / "attn_backend"
    kind: str  # "transform" | "compile_backend" | "world_size" | "attn_backend"
    category: str
    stage: str | None
    full: object  # value in the full (candidate) config: True for an enabled transform, a str/int otherwise
    minimal: object  # value in the stripped config

    def describe(self) -> str:
        if self.kind == "transform":
            return f"{self.name} [{self.category}, {self.stage}]"
        return f"{self.name}={self.full} (minimal {self.minimal}) [{self.category}]"


def _load_rules(path: Path = KNOB_CATEGORIES) -> tuple[list[dict], list[str]]:
    data = load_yaml(path, "knob category rules")
    return data.get("rules", []), data.get("strippable", [])


def categorize(name: str, stage: str | None, rules: list[dict]) -> str:
    for rule in rules:
        if "name" in rule and not re.fullmatch(rule["name"], name):
            continue
        if "stage" in rule and rule["stage"] != stage:
            continue
        return rule["category"]
    return "keep"


class Catalogue:
    """Transforms of one default.yaml (in file order), their defaults and categories."""

    def __init__(self, default: dict, source: str = "<dict>", rules_path: Path = KNOB_CATEGORIES):
        self.source = source
        self.default = default
        rules, self.strippable = _load_rules(rules_path)
        self.transforms: dict[str, dict] = dict(default.get("transforms") or {})
        self.categories = {n: categorize(n, c.get("stage"), rules) for n, c in self.transforms.items()}

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Catalogue":
        return cls(load_yaml(path, "default.yaml"), str(path))

    def names(self) -> list[str]:
        return list(self.transforms)

    def stage_of(self, name: str) -> str | None:
        return (self.transforms.get(name) or {}).get("stage")

    def category_of(self, name: str) -> str:
        return self.categories.get(name, "keep")

    def add_plugin_transform(self, name: str, conf: dict, category: str = "fusion") -> None:
        """A plugin transform becomes a knob like any built-in one."""
        self.transforms[name] = dict(conf)
        self.categories[name] = category

    def ordered(self, names) -> list[str]:
        """Names in pipeline order: by stage, then file order (AD's InferenceOptimizer sort)."""
        pos = {n: i for i, n in enumerate(self.transforms)}
        return sorted(names, key=lambda n: (STAGES.index(self.stage_of(n)) if self.stage_of(n) in STAGES else 99,
                                            pos.get(n, 1 << 30)))
