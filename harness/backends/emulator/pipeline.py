"""From a user config to an ordered, validated plan of transforms, and running it on a model.

``build_plan(user, plugin_paths)`` is pure configuration work (no torch): it reads the emulator's
default.yaml with the same knob code used for a real AD ``default.yaml``
(``Catalogue.from_yaml`` + ``resolve``), loads plugin transforms into the catalogue, and
validates transform names, stages, faults and the shortcut fields -- every problem is a
``HarnessError`` naming the value, the valid values and the fix.

``run_plan(plan, model, context)`` applies the enabled transforms in AD's order (stage order,
then file order within a stage: ``InferenceOptimizer`` in ``transform/optimizer.py``) and returns
one record per transform, shaped like AD's ``[stage=..., transform=...]`` log lines. A transform
that raises aborts the pipeline with ``TransformError`` naming it (the evaluation becomes
``unresolved``), unless it sets AD's ``skip_on_error: true``.
"""
from __future__ import annotations

import operator
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import Catalogue, resolve, validate_transform_names
from harness.config.catalogue import STAGES
from harness.config.ops import deep_merge
from harness.errors import HarnessError, one_of
from harness.paths import EMULATOR_DEFAULT_YAML

from harness.backends.emulator.attention import KERNELS as ATTENTION_KERNELS
from harness.backends.emulator.compile import COMPILE_BACKENDS
from harness.backends.emulator.faults import check_fault
from harness.backends.emulator.noise import NoiseSettings, kernel_signature, parse_noise
from harness.backends.emulator.plugins import PluginSet, load_plugins

ATTN_BACKENDS = tuple(ATTENTION_KERNELS)  # attn_backend values (harness/backends/emulator/attention.py)


class TransformError(RuntimeError):
    """A transform raised while applying (an engine failure, not a bad input)."""


@dataclass
class Step:
    name: str
    stage: str | None
    conf: dict
    plugin: str | None = None  # plugin file, None for a built-in

    @property
    def enabled(self) -> bool:
        return bool(self.conf.get("enabled", True)) and self.stage is not None


@dataclass
class Plan:
    catalogue: Catalogue
    resolved: dict
    plugins: PluginSet
    steps: list[Step] = field(default_factory=list)

    @property
    def world_size(self) -> int:
        return int(self.resolved.get("world_size") or 1)

    @property
    def compile_backend(self) -> str:
        return str(self.resolved.get("compile_backend") or "torch-simple")

    @property
    def attn_backend(self) -> str:
        return str(self.resolved.get("attn_backend") or "trtllm")

    @property
    def engine_noise(self) -> NoiseSettings:
        """Cross-engine noise (``engine_noise:``, noise.py): part of every config, never a knob."""
        return parse_noise(self.resolved.get("engine_noise"))

    @property
    def kernel_signature(self) -> int:
        """What the config-specific share of the noise depends on (noise.kernel_signature)."""
        return kernel_signature([s.name for s in self.steps if s.enabled], self.compile_backend,
                                self.attn_backend, self.world_size)


def _plugin_paths(user: dict, extra) -> list[str]:
    paths = list(extra or [])
    yaml_plugins = user.get("plugins") or []
    if isinstance(yaml_plugins, str):
        yaml_plugins = [yaml_plugins]
    if not isinstance(yaml_plugins, list):
        raise HarnessError(f"config key 'plugins' must be a list of plugin file paths, got {yaml_plugins!r}.")
    out, seen = [], set()
    for p in paths + [str(p) for p in yaml_plugins]:
        key = os.path.realpath(p) if os.path.exists(p) else p
        if key not in seen:  # the same file from --plugin and from `plugins:` loads once
            seen.add(key)
            out.append(p)
    return out


def _check_top_level(cfg: dict) -> None:
    ws = cfg.get("world_size", 1)
    if isinstance(ws, bool) or not isinstance(ws, int) or ws < 1:
        raise HarnessError(f"world_size must be a positive integer, got {ws!r}. Set world_size: 1, 2, 4, ...")
    cb = cfg.get("compile_backend")
    if cb is not None and cb not in COMPILE_BACKENDS:
        raise one_of("compile_backend", cb, list(COMPILE_BACKENDS), "Set compile_backend to one of these.")
    ab = cfg.get("attn_backend")
    if ab is not None and ab not in ATTN_BACKENDS:
        raise one_of("attn_backend", ab, list(ATTN_BACKENDS), "Set attn_backend to one of these.")
    if "engine_noise" in cfg:
        parse_noise(cfg["engine_noise"])


def build_catalogue(user: dict | None = None, plugin_paths=(), default_yaml: str | Path = EMULATOR_DEFAULT_YAML):
    """(catalogue with plugin transforms added, PluginSet): the knob list later phases use."""
    user = user or {}
    catalogue = Catalogue.from_yaml(default_yaml)
    plugins = load_plugins(_plugin_paths(user, plugin_paths), catalogue.names())
    user_t = user.get("transforms") or {}
    for name in plugins.names():
        conf = deep_merge(plugins.defaults.get(name) or {}, user_t.get(name) or {})
        catalogue.add_plugin_transform(name, {"stage": conf.get("stage")}, plugins.categories[name])
    return catalogue, plugins


def _check_shape(user) -> dict:
    """The config's structure: a mapping whose ``transforms`` is a mapping of mappings; a normalised copy."""
    if not isinstance(user, dict):
        raise HarnessError(f"the emulator config must be a mapping, got {type(user).__name__}.")
    user = dict(user)
    transforms = user.get("transforms") or {}
    if not isinstance(transforms, dict):
        raise HarnessError(f"config key 'transforms' must be a mapping {{name: {{stage, enabled, ...}}}}, "
                           f"got {type(transforms).__name__}.")
    for name, conf in transforms.items():
        if conf is not None and not isinstance(conf, dict):
            raise HarnessError(f"transforms.{name} must be a mapping (e.g. {{enabled: false}}), got {conf!r}.")
    user["transforms"] = {n: dict(c or {}) for n, c in transforms.items()}
    _check_top_level(user)
    return user


def _check_step(name: str, conf: dict, plugin: str | None) -> None:
    """One transform entry's values: stage, enabled, fault (built-ins), fault_backend, fault_strength."""
    stage = conf.get("stage")
    if stage is None:
        if plugin is None and "stage" in conf:
            raise HarnessError(f"transform {name!r} has no stage. Add stage: one of {', '.join(STAGES)}.")
    elif stage not in STAGES:
        raise one_of(f"stage of transform {name!r}:", stage, STAGES, f"Fix transforms.{name}.stage.")
    if not isinstance(conf.get("enabled", True), bool):
        raise HarnessError(f"transforms.{name}.enabled must be true or false, got {conf.get('enabled')!r}.")
    if plugin is None and conf.get("fault") is not None:
        check_fault(name, conf["fault"])
    if conf.get("fault_backend") is not None and conf["fault_backend"] not in ATTN_BACKENDS:
        raise one_of(f"transforms.{name}.fault_backend", conf["fault_backend"], list(ATTN_BACKENDS),
                     "Name the attention backend whose kernel holds the bug.")
    fs = conf.get("fault_strength")
    if fs is not None and (isinstance(fs, bool) or not isinstance(fs, (int, float))):
        raise HarnessError(f"transforms.{name}.fault_strength must be a number, got {fs!r}.")


def check_config(user: dict | None, default_yaml: str | Path = EMULATOR_DEFAULT_YAML) -> None:
    """Everything ``build_plan`` checks that needs neither torch nor the plugin files: the structure,
    world_size / compile_backend / attn_backend / engine_noise, and each entry's values (a fault must
    exist and fit its host transform; enabled is a bool). ``--dry-run`` and ``diagnose`` call it so a
    bad value fails before any evaluation."""
    user = _check_shape(user or {})
    builtin = set(Catalogue.from_yaml(default_yaml).names())
    for name, conf in user["transforms"].items():
        _check_step(name, conf, None if name in builtin else "(plugin)")


def build_plan(user: dict | None, plugin_paths=(), default_yaml: str | Path = EMULATOR_DEFAULT_YAML) -> Plan:
    user = _check_shape(user or {})
    catalogue, plugins = build_catalogue(user, plugin_paths, default_yaml)
    validate_transform_names(user, catalogue)
    resolved = resolve(catalogue, user)
    for name in plugins.names():
        merged = deep_merge(plugins.defaults.get(name) or {}, resolved["transforms"].get(name) or {})
        merged.setdefault("enabled", True)
        resolved["transforms"][name] = merged
    _check_top_level(resolved)

    steps = []
    for name, conf in resolved["transforms"].items():
        conf = dict(conf or {})
        plugin = plugins.sources.get(name)
        if conf.get("stage") is None and plugin is None:
            raise HarnessError(f"transform {name!r} has no stage. Add stage: one of {', '.join(STAGES)}.")
        _check_step(name, conf, plugin)
        steps.append(Step(name, conf.get("stage"), conf, plugin))
    order = {n: i for i, n in enumerate(catalogue.names())}
    steps.sort(key=lambda s: (STAGES.index(s.stage) if s.stage in STAGES else len(STAGES),
                              order.get(s.name, len(order))))
    return Plan(catalogue, resolved, plugins, steps)


def run_plan(plan: Plan, model, context: dict) -> list[dict]:
    """Apply the plan's enabled transforms in order; one record per transform, shaped like the records
    harness/backends/trtllm/logs.py parses from AD's log lines (``status``, ``num_matches``, ``evidence``)."""
    from harness.backends.emulator.transforms import TRANSFORMS

    records = []
    for step in plan.steps:
        rec = {"stage": step.stage, "transform": step.name, "enabled": step.enabled, "skipped": True,
               "num_matches": 0, "status": "disabled", "evidence": "enabled: false in the resolved config"}
        if step.plugin:
            rec["plugin"] = step.plugin
        if step.enabled:
            fn = plan.plugins.transforms.get(step.name) if step.plugin else TRANSFORMS.get(step.name)
            if fn is None:
                raise TransformError(f"transform {step.name!r} (stage {step.stage}) is in the pipeline but has no "
                                     f"implementation in the emulator")
            _apply_step(step, fn, model, dict(context, transform=step.name, stage=step.stage), rec)
        records.append(rec)
    return records


def _apply_step(step: Step, fn, model, ctx: dict, rec: dict) -> None:
    """Run one transform and fill its record (AD's skip_on_error: a failure becomes ``failed``). A plugin
    that exits the process or returns something other than a match count is bad input naming the plugin."""
    t0 = time.perf_counter()
    where = f"transform {step.name!r} (stage {step.stage}" + (f", plugin {step.plugin}" if step.plugin else "") + ")"
    try:
        n = fn(model, dict(step.conf), ctx)
    except SystemExit as exc:
        raise HarnessError(f"{where} called sys.exit({exc.code!r}); a transform must return its number of matches, "
                           "not exit the process. Remove the exit from the plugin.") from None
    except Exception as exc:  # noqa: BLE001 - reported with the transform's name
        if not step.conf.get("skip_on_error"):
            raise TransformError(f"{where} failed while applying: {type(exc).__name__}: {exc}") from exc
        rec.update(error=f"{type(exc).__name__}: {exc}", time_s=round(time.perf_counter() - t0, 4), status="failed",
                   evidence=f"Transform {step.name} failed: {type(exc).__name__}: {exc} (skip_on_error)")
        return
    try:
        n = 1 if n is None else operator.index(n)  # an int (numpy and 0-d torch integers too), not "3" or 2.5
    except TypeError:
        raise HarnessError(f"{where} returned {n!r} ({type(n).__name__}); a transform returns its number of matches "
                           "(an int, or None for 1). Fix the plugin's return value.") from None
    rec.update(skipped=(n == 0), num_matches=n, time_s=round(time.perf_counter() - t0, 4),
               status="applied" if n else "skipped",
               evidence=f"{n} match{'es' if n != 1 else ''}" if n else "0 matches: nothing of this kind in the model")
