"""Per-sample evaluation records (one JSON object per line in samples.jsonl) and their hashes."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

from harness.jsonio import atomic_write, canonical_json, sha

RECORD_FIELDS = (
    "id", "subject", "reference", "prompt_hash", "prompt_token_hash", "prompt_tokens",
    "output", "token_ids", "finish_reason", "parsed", "correct",
    "answer_logprobs", "top_logprobs", "nonfinite", "detail",
)


def prompt_hash(prompt: str) -> str:
    return sha(prompt)


def token_hash(token_ids: list[int] | None) -> str | None:
    return None if token_ids is None else sha(canonical_json(list(map(int, token_ids))))


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def make_record(sample, completion, score) -> dict:
    """Build the record for one sample from the task Sample, backend Completion and task Score."""
    answer_lp = None
    if completion.answer_logprobs is not None:
        answer_lp = {k.strip(): v for k, v in completion.answer_logprobs.items()}
    lps = []
    if answer_lp:
        lps += list(answer_lp.values())
    for pos in completion.top_logprobs or []:
        lps += list(pos.values())
    return {
        "id": sample.id,
        "subject": sample.subject,
        "reference": sample.reference,
        "prompt_hash": prompt_hash(sample.prompt),
        "prompt_token_hash": token_hash(completion.prompt_token_ids),
        "prompt_tokens": None if completion.prompt_token_ids is None else len(completion.prompt_token_ids),
        "output": completion.text,
        "token_ids": list(map(int, completion.token_ids)),
        "finish_reason": completion.finish_reason,
        "parsed": score.parsed,
        "correct": bool(score.correct),
        "answer_logprobs": answer_lp,
        "top_logprobs": completion.top_logprobs,
        "nonfinite": any(not _finite(v) for v in lps),
        "detail": score.detail or {},
    }


def _json_safe(obj):
    """NaN/inf are not JSON; store them as strings "nan"/"inf"/"-inf" and read them back."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


_SPECIAL = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


def _restore(obj, key=None):
    if isinstance(obj, dict):
        return {k: _restore(v, key) for k, v in obj.items()}  # values inherit the field name
    if isinstance(obj, list):
        return [_restore(v, key) for v in obj]
    if key in ("answer_logprobs", "top_logprobs") and isinstance(obj, str) and obj in _SPECIAL:
        return _SPECIAL[obj]
    return obj


def dumps_record(rec: dict) -> str:
    return json.dumps(_json_safe(rec), ensure_ascii=False)


def loads_record(line: str) -> dict:
    rec = json.loads(line)
    for k in ("answer_logprobs", "top_logprobs"):
        if rec.get(k) is not None:
            rec[k] = _restore(rec[k], k)
    return rec


def write_records(path: str | Path, records: Iterable[dict]) -> None:
    """samples.jsonl, atomically (harness/jsonio.py ``atomic_write``: no temp file left on a full disk)."""
    with atomic_write(path) as f:
        for rec in records:
            f.write(dumps_record(rec) + "\n")


def read_records(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [loads_record(line) for line in f if line.strip()]
