"""Pure operations on AD-style config dicts: merge, resolve, strip, toggle, hash, diff.

A *user config* is what a user writes (or bisect derives): an overlay on top of the default.yaml
in force, exactly what AD takes as ``yaml_extra`` / keyword arguments. A *resolved config* is the
default deep-merged with the overlay, with AD's shortcut fields synced the way AD syncs them
(``update_transforms_with_shortcuts`` in tensorrt_llm/_torch/auto_deploy/llm_args.py: an
explicitly set ``compile_backend`` / ``attn_backend`` wins over ``transforms.compile_model.backend``
/ ``transforms.insert_cached_attention.backend``).
"""
from __future__ import annotations

import copy
import difflib

from harness.config.catalogue import Catalogue, Knob
from harness.errors import HarnessError
from harness.jsonio import canonical_json, sha

# shortcut field -> (transform, option) it writes (llm_args.py, update_transforms_with_shortcuts)
SHORTCUTS = {
    "compile_backend": ("compile_model", "backend"),
    "attn_backend": ("insert_cached_attention", "backend"),
}
MINIMAL_COMPILE_BACKEND = "torch-simple"


def deep_merge(base: dict, over: dict) -> dict:
    """A new dict: ``over`` merged into ``base`` recursively (later wins), like OmegaConf.merge."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve(catalogue: Catalogue, user: dict) -> dict:
    """default.yaml + user overlay, shortcuts synced, ``enabled`` explicit, world_size defaulted to 1."""
    cfg = deep_merge(catalogue.default, user or {})
    transforms = cfg.setdefault("transforms", {})
    for tconf in transforms.values():
        if isinstance(tconf, dict):
            tconf.setdefault("enabled", True)  # TransformConfig.enabled defaults to True
    for field, (tname, opt) in SHORTCUTS.items():
        if tname not in transforms:
            continue
        if (user or {}).get(field) is not None:
            transforms[tname][opt] = user[field]
        if opt in transforms[tname]:
            cfg[field] = transforms[tname][opt]
    cfg.setdefault("world_size", 1)
    return cfg


def config_hash(resolved: dict) -> str:
    return sha(canonical_json(resolved))


def _flatten(d, prefix=""):
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_diff(a: dict, b: dict) -> list[str]:
    """Human-readable differences ``path: a -> b`` between two (resolved) configs."""
    fa, fb = _flatten(a), _flatten(b)
    lines = []
    for key in sorted(set(fa) | set(fb)):
        if fa.get(key, "<unset>") != fb.get(key, "<unset>"):
            lines.append(f"{key}: {fa.get(key, '<unset>')} -> {fb.get(key, '<unset>')}")
    return lines


def set_enabled(user: dict, name: str, enabled: bool) -> dict:
    return deep_merge(user, {"transforms": {name: {"enabled": bool(enabled)}}})


def validate_transform_names(user: dict, catalogue: Catalogue, extra: tuple[str, ...] = ()) -> None:
    """Every transform the user names must exist in the default.yaml in force (or a plugin)."""
    valid = set(catalogue.names()) | set(extra)
    for name, conf in ((user or {}).get("transforms") or {}).items():
        if name in valid:
            continue
        close = difflib.get_close_matches(name, sorted(valid), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise HarnessError(
            f"config names transform {name!r}, which is not in {catalogue.source}.{hint} "
            f"Valid transforms: {', '.join(catalogue.names() + list(extra))}"
        )
        del conf


def knobs_of(catalogue: Catalogue, user: dict) -> list[Knob]:
    """The strippable knobs of a full config, in pipeline order.

    Every strippable transform the full config enables (sharding transforms only when
    world_size > 1, where they act), plus ``compile_backend`` when it is not torch-simple,
    ``world_size`` when it is above 1, and ``attn_backend`` when the config sets a backend other than
    the default.yaml's (its minimal value is that default: the attention kernel AD ships with).
    """
    full = resolve(catalogue, user)
    ws = int(full.get("world_size") or 1)
    knobs: list[Knob] = []
    names = []
    for name, conf in full.get("transforms", {}).items():
        cat = catalogue.category_of(name)
        if cat not in catalogue.strippable or cat == "compile" or not (conf or {}).get("enabled", True):
            continue
        if cat == "sharding" and ws <= 1:
            continue
        names.append(name)
    for name in catalogue.ordered(names):
        knobs.append(Knob(name, "transform", catalogue.category_of(name), catalogue.stage_of(name), True, False))
    if ws > 1:
        knobs.insert(0, Knob("world_size", "world_size", "sharding", "sharding", ws, 1))
    ab, ab_default = full.get("attn_backend"), resolve(catalogue, {}).get("attn_backend")
    if ab and ab_default and ab != ab_default:
        knobs.append(Knob("attn_backend", "attn_backend", "attention", catalogue.stage_of(SHORTCUTS["attn_backend"][0]),
                          ab, ab_default))
    cb = full.get("compile_backend")
    if cb and cb != MINIMAL_COMPILE_BACKEND:
        knobs.append(Knob("compile_backend", "compile_backend", "compile", "compile", cb, MINIMAL_COMPILE_BACKEND))
    return knobs


def apply_knobs(user: dict, knobs: list[Knob], on) -> dict:
    """The user config with every knob not in ``on`` (names) set to its minimal value."""
    on = set(on)
    over: dict = {}
    for k in knobs:
        if k.name in on:
            continue
        if k.kind == "transform":
            over.setdefault("transforms", {})[k.name] = {"enabled": False}
        else:
            over[k.name] = k.minimal
    return deep_merge(user, over)


def strip_config(user: dict, catalogue: Catalogue) -> dict:
    """The minimal config: every strippable knob at its minimal value (method, Phase 3 step 1)."""
    return apply_knobs(user, knobs_of(catalogue, user), on=())
