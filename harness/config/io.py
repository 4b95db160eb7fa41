"""YAML in and out, with errors that name the file and line."""
from __future__ import annotations

from pathlib import Path

import yaml

from harness.errors import HarnessError

# libyaml's C loader when PyYAML was built with it (same results as safe_load, ~10x faster)
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str | Path, what: str = "config") -> dict:
    p = Path(path)
    if not p.is_file():
        raise HarnessError(f"{what} file {str(path)!r} does not exist. Pass an existing YAML path.")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise HarnessError(f"cannot read {what} file {str(path)!r}: {exc.strerror or exc}. "
                           f"Pass a readable YAML path.") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise HarnessError(f"{what} file {str(path)!r} is not UTF-8 at line {line} (byte 0x{raw[exc.start]:02x}). "
                           f"Re-save it as UTF-8.") from None
    try:
        data = yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join((getattr(exc, "problem", None) or str(exc)).split())
        raise HarnessError(f"{what} file {str(path)!r} is not valid YAML{where}: {problem}. Fix the YAML syntax.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HarnessError(f"{what} file {str(path)!r} must hold a mapping at top level, got {type(data).__name__}.")
    return data


def dump_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
