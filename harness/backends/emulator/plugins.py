"""Plugin transforms: ``--plugin path/to/file.py`` (repeatable) or ``plugins: [paths]`` in the YAML
(a dotted module name that is importable works too).

A plugin file is plain Python exposing

    TRANSFORMS = {"my_transform": fn, ...}      # required; fn(model, options, context) -> int | None

and optionally

    DEFAULTS = {"my_transform": {"stage": "post_load_fusion", "enabled": True}}   # its default.yaml entry
    CATEGORIES = {"my_transform": "fusion"}     # bisect category (default: fusion, i.e. strippable)

``fn`` rewrites the transformers model in place. ``options`` is the transform's resolved config
entry (stage, enabled and any keys the user wrote); ``context`` holds at least ``world_size``,
``compile_backend``, ``attn_backend``, ``config`` (the model's transformers config) and
``model_dir``. The return value is the number of matches (None counts as 1). A plugin transform is
configured exactly like a built-in one (``transforms: {my_transform: {stage: ..., enabled: ...}}``)
and runs in stage order with them (after the built-ins of its stage).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError

PLUGIN_HELP = "A plugin is a Python file exposing TRANSFORMS = {name: fn(model, options, context)}."


@dataclass
class PluginSet:
    transforms: dict = field(default_factory=dict)  # name -> callable
    defaults: dict = field(default_factory=dict)  # name -> default config entry
    categories: dict = field(default_factory=dict)  # name -> category
    sources: dict = field(default_factory=dict)  # name -> plugin file path

    def names(self) -> list[str]:
        return list(self.transforms)


_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def load_plugin_file(path: str | Path):
    """Import one plugin file (a fresh module per path) and return the module. A dotted name
    that is not a file (``my_pkg.my_plugin``) is imported as a module instead."""
    p = Path(path).expanduser()
    if not p.is_file() and _MODULE_NAME.match(str(path)) and not str(path).endswith(".py"):
        try:
            return importlib.import_module(str(path))
        except ImportError as exc:
            raise HarnessError(f"plugin {str(path)!r} is neither an existing file nor an importable module "
                               f"({exc}). Pass --plugin with a .py file or a module name. {PLUGIN_HELP}") from None
    if not p.is_file():
        raise HarnessError(f"plugin file {str(path)!r} does not exist. Pass --plugin with an existing .py file. "
                           f"{PLUGIN_HELP}")
    mod_name = "harness_emulator_plugin_" + hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(mod_name, p)
    if spec is None or spec.loader is None:
        raise HarnessError(f"plugin file {str(path)!r} cannot be imported as Python. {PLUGIN_HELP}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SystemExit as exc:  # sys.exit() in a plugin must not end the command (silently, with exit 0)
        raise HarnessError(f"plugin file {str(path)!r} called sys.exit({exc.code!r}) while being imported; a plugin "
                           f"must not exit the process. Remove the exit from the plugin file.") from None
    except Exception as exc:  # noqa: BLE001 - a broken plugin is a bad input
        raise HarnessError(f"plugin file {str(path)!r} failed to import: {type(exc).__name__}: {exc}. "
                           f"Fix the plugin file.") from None
    return module


def load_plugins(paths, builtin_names) -> PluginSet:
    """All plugin transforms of ``paths``; HarnessError for a missing file, a file without a
    TRANSFORMS dict of callables, or a name that collides with a built-in or another plugin."""
    out = PluginSet()
    builtin = set(builtin_names)
    seen_files = set()
    for path in paths or []:
        key = str(Path(path).expanduser().resolve()) if Path(path).expanduser().is_file() else str(path)
        if key in seen_files:
            continue
        seen_files.add(key)
        module = load_plugin_file(path)
        table = getattr(module, "TRANSFORMS", None)
        if table is None:
            raise HarnessError(f"plugin file {str(path)!r} has no TRANSFORMS. {PLUGIN_HELP}")
        if not isinstance(table, dict) or not table:
            raise HarnessError(f"plugin file {str(path)!r}: TRANSFORMS must be a non-empty dict "
                               f"{{name: callable}}, got {type(table).__name__}. {PLUGIN_HELP}")
        defaults = getattr(module, "DEFAULTS", None) or {}
        categories = getattr(module, "CATEGORIES", None) or {}
        for name, fn in table.items():
            if not isinstance(name, str) or not name:
                raise HarnessError(f"plugin file {str(path)!r}: transform names must be non-empty strings, "
                                   f"got {name!r}.")
            if not callable(fn):
                raise HarnessError(f"plugin file {str(path)!r}: TRANSFORMS[{name!r}] is not callable. {PLUGIN_HELP}")
            if name in builtin:
                raise HarnessError(f"plugin file {str(path)!r} defines transform {name!r}, which collides with a "
                                   f"built-in transform of the same name. Rename it in the plugin.")
            if name in out.transforms:
                raise HarnessError(f"plugin transform {name!r} is defined twice: in {out.sources[name]!r} and "
                                   f"{str(path)!r}. Rename one of them.")
            out.transforms[name] = fn
            out.defaults[name] = dict(defaults.get(name) or {})
            out.categories[name] = str(categories.get(name) or "fusion")
            out.sources[name] = str(path)
    return out
