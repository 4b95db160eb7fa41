"""Per-subject paired accuracy table of two runs (the report's Phase-5 table and plot data)."""
from __future__ import annotations


def per_subject(ref_records: list[dict], cand_records: list[dict]) -> list[dict]:
    """[{subject, n, ref_acc, cand_acc, diff, ref_wrong_cand_right, ref_right_cand_wrong}] (points),
    subjects sorted by the candidate's loss (largest first); only samples present in both runs."""
    cand = {r["id"]: r for r in cand_records}
    rows: dict[str, dict] = {}
    for r in ref_records:
        c = cand.get(r["id"])
        if c is None:
            continue
        row = rows.setdefault(r.get("subject") or "?", {"subject": r.get("subject") or "?", "n": 0, "ref": 0,
                                                          "cand": 0, "b": 0, "c": 0})
        row["n"] += 1
        row["ref"] += bool(r.get("correct"))
        row["cand"] += bool(c.get("correct"))
        row["b"] += bool(r.get("correct")) and not bool(c.get("correct"))
        row["c"] += (not bool(r.get("correct"))) and bool(c.get("correct"))
    out = []
    for row in rows.values():
        n = row["n"]
        out.append({"subject": row["subject"], "n": n, "ref_acc": round(100 * row["ref"] / n, 2),
                    "cand_acc": round(100 * row["cand"] / n, 2),
                    "diff": round(100 * (row["cand"] - row["ref"]) / n, 2),
                    "ref_right_cand_wrong": row["b"], "ref_wrong_cand_right": row["c"]})
    out.sort(key=lambda x: (x["diff"], x["subject"]))
    return out
