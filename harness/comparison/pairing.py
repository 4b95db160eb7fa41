"""Pair two runs' records sample by sample, and refuse to compare different prompts.

A paired comparison is only valid when both runs answered the *same* prompt. Two samples pair when

  * their ``id`` is equal, AND
  * their ``prompt_hash`` (sha256 of the exact prompt text) is equal, AND
  * their ``prompt_token_hash`` (hash of the prompt token ids the engine actually saw, after
    truncation) is equal wherever both records carry one.

The token-id check is the stronger one: two engines can receive the same string and still see
different token ids (a different tokenizer, a BOS added twice, truncation at another length).
That is a Phase-0 finding (the harness, not the engine, differs) and makes accuracy differences
meaningless, so any such mismatch makes the pairing *invalid*. Samples present in only one run
are not an error by themselves (they are left out and counted), but they are reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.errors import HarnessError

MAX_EXAMPLES = 5


@dataclass
class Pairing:
    """The outcome of pairing reference and candidate records.

    pairs: (ref_record, cand_record) for every valid pair, in reference order.
    prompt_mismatch / token_mismatch: ids whose prompt text / prompt token ids differ.
    only_ref / only_cand: ids present in one run only. duplicates: ids seen twice in one run.
    """

    pairs: list[tuple[dict, dict]] = field(default_factory=list)
    n_ref: int = 0
    n_cand: int = 0
    prompt_mismatch: list[str] = field(default_factory=list)
    token_mismatch: list[str] = field(default_factory=list)
    only_ref: list[str] = field(default_factory=list)
    only_cand: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    token_checked: int = 0  # pairs whose token hashes were both present and compared
    examples: list[dict] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.pairs)

    @property
    def valid(self) -> bool:
        """False when any shared id has a different prompt, or ids are duplicated, or nothing pairs."""
        return not (self.prompt_mismatch or self.token_mismatch or self.duplicates) and self.n > 0

    def problems(self) -> list[str]:
        """Human lines, loud and with counts; empty when the pairing is clean."""
        out = []
        shared = self.n + len(self.prompt_mismatch) + len(self.token_mismatch)
        if self.prompt_mismatch:
            out.append(f"PROMPT MISMATCH: {len(self.prompt_mismatch)} of {shared} shared sample ids have different "
                       f"prompt text (e.g. {', '.join(self.prompt_mismatch[:MAX_EXAMPLES])}); the runs did not ask "
                       f"the same questions, so the comparison is invalid (Phase 0: check prompt options, chat "
                       f"template, few-shot count, dataset path)")
        if self.token_mismatch:
            out.append(f"TOKEN MISMATCH: {len(self.token_mismatch)} of {self.token_checked + len(self.token_mismatch)}"
                       f" samples have the same prompt text but different prompt token ids "
                       f"(e.g. {', '.join(self.token_mismatch[:MAX_EXAMPLES])}); the engines tokenised differently "
                       f"(tokenizer, BOS handling or truncation), so the comparison is invalid")
        if self.duplicates:
            out.append(f"DUPLICATE IDS: {len(self.duplicates)} sample ids occur more than once in a run "
                       f"(e.g. {', '.join(self.duplicates[:MAX_EXAMPLES])})")
        if self.only_ref or self.only_cand:
            out.append(f"UNPAIRED: {len(self.only_ref)} samples only in the reference run "
                       f"(e.g. {', '.join(self.only_ref[:MAX_EXAMPLES]) or '-'}), {len(self.only_cand)} only in the "
                       f"candidate (e.g. {', '.join(self.only_cand[:MAX_EXAMPLES]) or '-'}); compared on the "
                       f"{self.n} shared samples")
        if self.n == 0 and not (self.prompt_mismatch or self.token_mismatch):
            out.append(f"NO COMMON SAMPLES: reference has {self.n_ref} records, candidate {self.n_cand}, none share an "
                       f"id; run both with the same --task, --dataset, --samples and --seed")
        return out

    def summary(self) -> dict:
        return {
            "n_paired": self.n, "n_ref": self.n_ref, "n_cand": self.n_cand, "valid": self.valid,
            "prompt_mismatch": len(self.prompt_mismatch), "token_mismatch": len(self.token_mismatch),
            "token_checked": self.token_checked, "only_ref": len(self.only_ref), "only_cand": len(self.only_cand),
            "duplicates": len(self.duplicates), "examples": self.examples[:MAX_EXAMPLES],
            "problems": self.problems(),
        }


class PairingError(HarnessError):
    """The two runs cannot be compared (different prompts, duplicate ids, nothing in common)."""

    def __init__(self, pairing: Pairing):
        self.pairing = pairing
        super().__init__("cannot compare these runs: " + "; ".join(pairing.problems()))


def _index(records: list[dict], dup: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for rec in records:
        rid = rec.get("id")
        if rid is None:
            raise HarnessError("a record has no 'id' field; samples.jsonl must come from harness.evaluation.records.make_record")
        rid = str(rid)
        if rid in out:
            if rid not in dup:
                dup.append(rid)
            continue
        out[rid] = rec
    return out


def pair_records(ref_records: list[dict], cand_records: list[dict]) -> Pairing:
    """Pair by id + prompt hash + prompt token hash (where both have it). Never raises on mismatch."""
    p = Pairing(n_ref=len(ref_records), n_cand=len(cand_records))
    ref = _index(ref_records, p.duplicates)
    cand = _index(cand_records, p.duplicates)
    for rid, r in ref.items():
        c = cand.get(rid)
        if c is None:
            p.only_ref.append(rid)
            continue
        if r.get("prompt_hash") != c.get("prompt_hash"):
            p.prompt_mismatch.append(rid)
            p.examples.append({"id": rid, "kind": "prompt", "ref": r.get("prompt_hash"), "cand": c.get("prompt_hash")})
            continue
        rt, ct = r.get("prompt_token_hash"), c.get("prompt_token_hash")
        if rt is not None and ct is not None:
            if rt != ct:
                p.token_mismatch.append(rid)
                p.examples.append({"id": rid, "kind": "prompt_tokens", "ref": rt, "cand": ct,
                                   "ref_tokens": r.get("prompt_tokens"), "cand_tokens": c.get("prompt_tokens")})
                continue
            p.token_checked += 1
        p.pairs.append((r, c))
    p.only_cand = [rid for rid in cand if rid not in ref]
    return p


def require_valid(pairing: Pairing) -> Pairing:
    """Raise PairingError (a HarnessError: the CLI prints it and exits 2) unless the pairing is valid."""
    if not pairing.valid:
        raise PairingError(pairing)
    return pairing
