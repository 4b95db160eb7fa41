"""A local checkpoint's files: readable (checked before any evaluation: bad input, not an engine result),
and how many positions the model holds (``max_positions``).

``check_model_files(model_dir)`` reads only metadata: ``config.json`` (and
``model.safetensors.index.json``) must be JSON objects, every shard the index names must exist,
and each ``*.safetensors`` file must be whole. The safetensors layout, as the library reads it
(huggingface/safetensors ``safetensors/src/tensor.rs``@45c8c2cb, ``SafeTensors::read_metadata``):
8 bytes little-endian header size N (at most 100 MB), N bytes of UTF-8 JSON header
``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": ...}``, then the byte
buffer; the offsets are relative to the buffer, which they must cover exactly, so a whole file is
``8 + N + max(end)`` bytes long (any other size: ``MetadataIncompleteBuffer``, "incomplete
metadata, file not fully covered"). A damaged file is a ``HarnessError`` naming it and
the fix, so it is reported as bad input up front instead of as an unresolved evaluation.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

from harness.errors import HarnessError

MAX_HEADER = 100_000_000  # MAX_HEADER_SIZE in safetensors/src/tensor.rs
FIX = "re-download or re-export the checkpoint, or pass another --model"


def _json_object(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise HarnessError(f"{path} is not UTF-8 text (byte {exc.start}); the checkpoint is damaged: {FIX}") from None
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); the "
                           f"checkpoint is damaged: {FIX}") from None
    except OSError as exc:
        raise HarnessError(f"cannot read {path}: {exc.strerror or exc}; {FIX}") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{path} must hold a JSON object, got {type(data).__name__}; {FIX}")
    return data


def _safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole safetensors file, or None."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"{size} bytes, shorter than the 8-byte header size"
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or 8 + n > size:
                return f"header of {n} bytes does not fit in the file's {size} bytes"
            header = json.loads(f.read(n).decode("utf-8"))
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "the header is not JSON"
    if not isinstance(header, dict):
        return "the header is not a JSON object"
    try:
        end = max([int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"] or [0])
    except (KeyError, TypeError, ValueError, IndexError):
        return "a tensor entry has no data_offsets"
    if 8 + n + end != size:
        return f"the header describes {8 + n + end} bytes but the file has {size} (truncated or padded)"
    return None


def check_model_files(model_dir: str | Path) -> None:
    """HarnessError naming the first damaged file of a local checkpoint directory (see module doc)."""
    root = Path(model_dir).expanduser()
    if (root / "config.json").is_file():
        _json_object(root / "config.json")
    shards = sorted(root.glob("*.safetensors"))
    index = root / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _json_object(index).get("weight_map") or {}
        for name in sorted(set(map(str, weight_map.values()))):
            if not (root / name).is_file():
                raise HarnessError(f"{index} names the shard {name!r}, which is missing from {root}; {FIX}")
    for shard in shards:
        problem = _safetensors_problem(shard)
        if problem:
            raise HarnessError(f"{shard} is not a whole safetensors file ({problem}); {FIX}")


POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def max_positions(model: str | Path) -> int | None:
    """The model's position limit from a local ``config.json`` (``max_position_embeddings`` or its other
    names, also under ``text_config``), or None (a hub id, no config, no such key)."""
    path = Path(str(model)).expanduser() / "config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for d in (cfg, cfg.get("text_config") if isinstance(cfg, dict) else None):
        if isinstance(d, dict):
            for key in POSITION_KEYS:
                if isinstance(d.get(key), int) and not isinstance(d.get(key), bool) and d[key] > 0:
                    return d[key]
    return None
