"""Phase 5: per-subject and per-category paired breakdown of two runs, with the method's flags.

``breakdown_tables(ref_records, cand_records, task_meta=None)`` (pure) returns pandas tables and
flags; ``write_breakdown(ref_records, cand_records, out_dir, task_meta=None)`` also writes
``per_subject.csv``, ``per_category.csv``, ``by_prompt_length.csv``, ``breakdown.md``,
``breakdown.png`` and ``flags.json`` and returns their paths with the flags.

Per subject (and per MMLU category, from tensorrt_llm/evaluate/mmlu.py's
SUBJECT_TO_SUBCATEGORIES / CATEGORY_TO_SUBCATEGORIES as harness.tasks.mmlu reproduces them): n,
reference and candidate accuracy, the delta, discordant counts and McNemar's exact p (two-sided
and one-sided "worse"), with Benjamini-Hochberg q-values over the subjects: only q <= alpha
colours a subject in the plot or flags it near chance (uncorrected, an A/A comparison of 57
subjects flags one in 28-60% of runs). The other flags rest on pooled tests.

Flags (the Phase 5 table of docs/method.md; each with the numbers behind it):

* ``uniform_drop`` - "all subjects uniformly ~N% below": the pooled paired drop is significant
  (McNemar one-sided), at least two thirds of the informative subjects moved down, and the
  per-subject loss rates among the reference's right answers are homogeneous (chi-square test
  not significant) -> suspect an FP8 kernel or the attention scale.
* ``near_chance`` - subjects whose candidate accuracy is within 10 points of chance (25% for
  4-choice) while the reference is clearly above chance and significantly better on that subject
  -> a systematic error (subject length, chunked prefill). Subjects near chance in *both* runs are
  listed separately: they may simply be hard for the model (docs/method.md, Phase 5: compare with
  PT's score on that subject).
* ``easy_right_hard_wrong`` - difficulty from the reference (harness.analysis.classify.easy_hard_split:
  subject accuracy, or the reference's own margin when no subject is "hard") -> near-decision-
  boundary sensitivity, a subtle numerical error.
* ``length_correlated`` - among the samples the reference got right, those the candidate lost
  have longer prompts *within their subject* (one-sided Mann-Whitney U on within-subject
  percentile ranks, so a subject that is both long and broken does not fake it), or subjects with
  longer prompts lose more (Spearman across subjects, significant) -> verify truncation / chunked
  prefill. The pooled (unstratified) p-value is reported beside them.

"Informative" subjects are those where the reference is at least 15 points above chance; a subject
the reference answers at chance cannot lose accuracy to a fault.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from harness.comparison import stats
from harness.errors import HarnessError
from harness.comparison.pairing import pair_records, require_valid

CHANCE_MC = 25.0
NEAR_CHANCE_POINTS = 10.0
INFORMATIVE_POINTS = 15.0


def _category(subject: str, task_meta: dict | None) -> str:
    if task_meta and isinstance(task_meta.get("categories"), dict) and subject in task_meta["categories"]:
        return str(task_meta["categories"][subject])
    try:
        from harness.tasks.mmlu import categories_of

        return ", ".join(categories_of(subject))
    except Exception:  # noqa: BLE001 - categories are optional decoration
        return "(custom)"


def _group_rows(pairs, key, alpha):
    import pandas as pd

    groups: dict[str, list] = {}
    for r, c in pairs:
        groups.setdefault(key(r), []).append((r, c))
    rows = []
    for name, pp in groups.items():
        n = len(pp)
        kr = sum(bool(r.get("correct")) for r, _ in pp)
        kc = sum(bool(c.get("correct")) for _, c in pp)
        b, cc = stats.discordant_counts([bool(r.get("correct")) for r, _ in pp], [bool(c.get("correct")) for _, c in pp])
        m = stats.mcnemar_exact(b, cc)
        lens = [r.get("prompt_tokens") for r, _ in pp if isinstance(r.get("prompt_tokens"), (int, float))]
        rows.append({"name": name, "n": n, "ref_acc": 100.0 * kr / n, "cand_acc": 100.0 * kc / n,
                     "delta": 100.0 * (kc - kr) / n, "losses_b": b, "gains_c": cc, "p_two_sided": m.p_two_sided,
                     "p_worse": m.p_regressed, "mean_prompt_tokens": (sum(lens) / len(lens)) if lens else None})
    table = pd.DataFrame(rows)
    if len(table):  # Benjamini-Hochberg over the groups before anything is coloured or flagged
        table["q_two_sided"] = stats.benjamini_hochberg(table["p_two_sided"].tolist())
        table["q_worse"] = stats.benjamini_hochberg(table["p_worse"].tolist())
        table["significant"] = table["q_two_sided"] <= alpha
    return table


def breakdown_tables(ref_records, cand_records, task_meta: dict | None = None, alpha: float = 0.05) -> dict:
    """Per-subject / per-category / per-length tables (pandas) and the flags dict."""
    import pandas as pd

    pairing = require_valid(pair_records(ref_records, cand_records))
    pairs = pairing.pairs
    is_mc = (task_meta or {}).get("multiple_choice")
    if is_mc is None:
        is_mc = all(str(r.get("reference") or "").strip() in ("A", "B", "C", "D") for r, _ in pairs)
    chance = float((task_meta or {}).get("chance", CHANCE_MC if is_mc else 0.0))

    subj = _group_rows(pairs, lambda r: str(r.get("subject")), alpha).rename(columns={"name": "subject"})
    subj.insert(1, "category", [_category(s, task_meta) for s in subj["subject"]])
    subj["ref_near_chance"] = is_mc and subj["ref_acc"] <= chance + NEAR_CHANCE_POINTS
    subj["cand_near_chance"] = is_mc and subj["cand_acc"] <= chance + NEAR_CHANCE_POINTS
    subj = subj.sort_values(["delta", "subject"]).reset_index(drop=True)
    cat_of = dict(zip(subj["subject"], subj["category"]))
    cat = _group_rows(pairs, lambda r: cat_of[str(r.get("subject"))], alpha).rename(columns={"name": "category"})
    cat = cat.sort_values("category").reset_index(drop=True)

    # prompt length quartiles
    lens = [r.get("prompt_tokens") for r, _ in pairs]
    length_tab = pd.DataFrame()
    if all(isinstance(x, (int, float)) for x in lens) and len(set(lens)) > 1:
        q = pd.qcut(pd.Series(lens, dtype=float), q=min(4, len(set(lens))), duplicates="drop")
        labels = [str(x) for x in q]
        length_tab = _group_rows([(dict(r, _bin=lab), c) for (r, c), lab in zip(pairs, labels)],
                                 lambda r: r["_bin"], alpha).rename(columns={"name": "prompt_tokens"})

    flags = _flags(pairs, subj, is_mc, chance, alpha)
    overall = stats.mcnemar_exact(*stats.discordant_counts([bool(r.get("correct")) for r, _ in pairs],
                                                         [bool(c.get("correct")) for _, c in pairs]))
    n = len(pairs)
    summary = {"n": n, "subjects": int(len(subj)),
               "ref_acc": 100.0 * sum(bool(r.get("correct")) for r, _ in pairs) / n,
               "cand_acc": 100.0 * sum(bool(c.get("correct")) for _, c in pairs) / n,
               "losses_b": overall.b, "gains_c": overall.c, "p_two_sided": overall.p_two_sided,
               "p_worse": overall.p_regressed, "chance": chance, "alpha": alpha,
               "pairing_problems": pairing.problems()}
    summary["delta"] = summary["cand_acc"] - summary["ref_acc"]
    return {"per_subject": subj, "per_category": cat, "by_prompt_length": length_tab, "flags": flags,
            "summary": summary}


def _flags(pairs, subj, is_mc, chance, alpha) -> dict:
    """The Phase-5 flags, one function each (see the module docstring)."""
    informative = subj[subj["ref_acc"] >= chance + INFORMATIVE_POINTS] if is_mc else subj
    return {"uniform_drop": _uniform_drop_flag(pairs, informative, alpha),
            "near_chance": _near_chance_flag(subj, is_mc, chance, alpha),
            "easy_right_hard_wrong": _easy_right_hard_wrong_flag(pairs, alpha),
            "length_correlated": _length_correlated_flag(pairs, subj, alpha)}


def _loss_heterogeneity_p(pairs, informative) -> float | None:
    """Chi-square p over informative subjects of (lost, kept) among the reference's right answers;
    None when there are fewer than two subjects or no loss (or no keep) at all."""
    from scipy.stats import chi2_contingency

    informative_subjects = set(informative["subject"])
    lost_kept_by_subject: dict[str, list[int]] = {}
    for ref, cand in pairs:
        subject = str(ref.get("subject"))
        if subject in informative_subjects and ref.get("correct"):
            lost_kept_by_subject.setdefault(subject, [0, 0])[0 if not cand.get("correct") else 1] += 1
    table = [counts for counts in lost_kept_by_subject.values() if sum(counts) > 0]
    if len(table) >= 2 and sum(counts[0] for counts in table) > 0 and sum(counts[1] for counts in table) > 0:
        return float(chi2_contingency(table)[1])
    return None


def _uniform_drop_flag(pairs, informative, alpha) -> dict:
    """A significant pooled drop, two thirds of the informative subjects down, homogeneous loss rates."""
    overall = stats.mcnemar_exact(*stats.discordant_counts([bool(ref.get("correct")) for ref, _ in pairs],
                                                           [bool(cand.get("correct")) for _, cand in pairs]))
    down = int((informative["delta"] < 0).sum())
    share_down = down / len(informative) if len(informative) else 0.0
    heterogeneity_p = _loss_heterogeneity_p(pairs, informative)
    uniform = overall.p_regressed < alpha and len(informative) >= 2 and share_down >= 2 / 3 and \
        (heterogeneity_p is None or heterogeneity_p >= alpha)
    return {"flag": bool(uniform), "p_worse": overall.p_regressed,
            "informative_subjects": int(len(informative)), "subjects_down": down,
            "share_down": share_down, "heterogeneity_p": heterogeneity_p,
            "mean_delta_informative": float(informative["delta"].mean()) if len(informative) else None,
            "implication": "uniform precision loss - suspect an FP8 kernel or the attention scale"}


def _near_chance_flag(subj, is_mc, chance, alpha) -> dict:
    """Subjects the candidate answers near chance while the reference knows them (and is
    significantly better there, Benjamini-Hochberg over the subjects); subjects near chance in
    both runs listed apart."""
    newly, both = [], []
    if is_mc:
        for _, row in subj.iterrows():
            if row["cand_acc"] <= chance + NEAR_CHANCE_POINTS:
                if row["ref_acc"] >= chance + INFORMATIVE_POINTS and row["q_worse"] <= alpha:
                    newly.append(row["subject"])
                elif row["ref_acc"] <= chance + NEAR_CHANCE_POINTS:
                    both.append(row["subject"])
    return {"flag": bool(newly), "subjects": newly, "near_chance_in_both": both,
            "chance": chance, "band_points": NEAR_CHANCE_POINTS,
            "implication": "a systematic error on those subjects - suspect subject length or "
                           "chunked prefill; subjects near chance in both runs are hard for the "
                           "model itself (verify against PT per subject)"}


def _easy_right_hard_wrong_flag(pairs, alpha) -> dict:
    from harness.analysis.classify import easy_hard_split

    split = easy_hard_split([ref for ref, _ in pairs], [cand for _, cand in pairs], alpha=alpha)
    if split:
        split = {k: v for k, v in split.items() if k not in ("rows", "total")}
    return {"flag": bool(split and split.get("matched")), **(split or {}),
            "implication": "near-decision-boundary sensitivity - suspect a subtle numerical error"}


def _lost_longer_within_subject(pairs) -> float | None:
    """One-sided Mann-Whitney p that, among the reference's right answers, the lost ones have longer
    prompts than the kept ones *within their subject* (mid-rank percentile of the prompt length in
    the subject; subjects without length variation are left out). None with too few losses."""
    from scipy.stats import rankdata

    lengths_by_subject: dict[str, list] = {}
    for ref, cand in pairs:
        if ref.get("correct") and isinstance(ref.get("prompt_tokens"), (int, float)):
            lengths_by_subject.setdefault(str(ref.get("subject")), []).append(
                (ref["prompt_tokens"], not cand.get("correct")))
    lost_ranks, kept_ranks = [], []
    for items in lengths_by_subject.values():
        if len({tokens for tokens, _ in items}) < 2:  # no length variation within this subject
            continue
        percentiles = (rankdata([tokens for tokens, _ in items]) - 0.5) / len(items)  # ties -> equal
        for percentile, (_, was_lost) in zip(percentiles, items):
            (lost_ranks if was_lost else kept_ranks).append(float(percentile))
    if len(lost_ranks) >= 3 and kept_ranks:
        return stats.mann_whitney_greater(lost_ranks, kept_ranks)
    return None


def _length_vs_delta_spearman(subj) -> tuple[float | None, float | None]:
    """Spearman (rho, p) of the subjects' mean prompt length against their delta (None, None when
    there are fewer than four subjects, a missing length or no variation)."""
    if len(subj) >= 4 and subj["mean_prompt_tokens"].notna().all() and subj["mean_prompt_tokens"].nunique() > 1 \
            and subj["delta"].nunique() > 1:
        from scipy.stats import spearmanr

        result = spearmanr(subj["mean_prompt_tokens"], subj["delta"])
        if not math.isnan(result.statistic):
            return float(result.statistic), float(result.pvalue)
    return None, None


def _length_correlated_flag(pairs, subj, alpha) -> dict:
    """Prompt length: pooled, within subjects (percentile ranks), and across subjects."""
    lost = [ref.get("prompt_tokens") for ref, cand in pairs if ref.get("correct") and not cand.get("correct")]
    kept = [ref.get("prompt_tokens") for ref, cand in pairs if ref.get("correct") and cand.get("correct")]
    lost = [tokens for tokens in lost if isinstance(tokens, (int, float))]
    kept = [tokens for tokens in kept if isinstance(tokens, (int, float))]
    enough = len(lost) >= 3 and bool(kept)
    p_pooled = stats.mann_whitney_greater(lost, kept) if enough else None
    p_within = _lost_longer_within_subject(pairs) if enough else None
    rho, rho_p = _length_vs_delta_spearman(subj)
    across = rho is not None and rho < 0 and rho_p < alpha
    return {"flag": bool((p_within is not None and p_within < alpha) or across), "p_lost_longer": p_pooled,
            "p_lost_longer_within_subject": p_within, "lost": len(lost),
            "lost_median_tokens": _median(lost), "kept_median_tokens": _median(kept),
            "subject_length_vs_delta_spearman": rho, "subject_length_vs_delta_p": rho_p,
            "implication": "errors correlate with prompt length - verify truncation behaviour and chunked prefill"}


def _median(v):
    v = sorted(v)
    if not v:
        return None
    k = len(v) // 2
    return float(v[k]) if len(v) % 2 else 0.5 * (v[k - 1] + v[k])


# ---------------------------------------------------------------------------------------------
# writers


def _fmt_cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 0.01 and v != 0 else f"{v:.1f}" if abs(v) >= 1 else f"{v:.2f}"
    return str(v).replace("|", "\\|")


def md_table(df) -> str:
    """A GitHub Markdown table of a DataFrame (no extra dependency)."""
    if df is None or len(df) == 0:
        return "(no rows)\n"
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        out.append("| " + " | ".join(_fmt_cell(row[c].item() if hasattr(row[c], "item") else row[c])
                                     for c in cols) + " |")
    return "\n".join(out) + "\n"


def _plot(subj, path: Path, chance: float, labels) -> None:
    """Both backends per subject and the paired change, subjects in the table's order (by delta, largest
    loss at the top); the legend below the axes, clear of the axis labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = subj  # breakdown_tables sorts by (delta, subject), as the tables are
    k = len(s)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, max(3.0, 0.32 * k + 1.8)), sharey=True,
                                   width_ratios=[2, 1], layout="constrained")
    y = list(range(k))
    ax1.barh([v - 0.2 for v in y], s["ref_acc"], height=0.4, label=labels[0], color="#4c72b0")
    ax1.barh([v + 0.2 for v in y], s["cand_acc"], height=0.4, label=labels[1], color="#dd8452")
    if chance:
        ax1.axvline(chance, color="grey", ls="--", lw=1, label=f"chance {chance:g}%")
    ax1.set_yticks(y, list(s["subject"]), fontsize=8)
    ax1.set_xlabel("accuracy (%)")
    ax1.set_xlim(0, 100)
    colors = ["#c44e52" if (sig and d < 0) else "#55a868" if (sig and d > 0) else "#8c8c8c"
              for d, sig in zip(s["delta"], s["significant"])]
    ax2.barh(y, s["delta"], color=colors)
    ax2.axvline(0, color="black", lw=0.8)
    ax2.set_xlabel("delta (points); coloured: McNemar,\nBenjamini-Hochberg q <= alpha", fontsize=9)
    ax2.set_title(f"{labels[1]} - {labels[0]}", fontsize=9)
    ax1.invert_yaxis()
    fig.suptitle("Per-subject paired accuracy", fontsize=11)
    fig.legend(loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_breakdown(ref_records, cand_records, out_dir, task_meta: dict | None = None, alpha: float = 0.05,
                    labels: tuple[str, str] = ("reference", "candidate")) -> dict:
    """Write the Phase-5 breakdown (CSV, Markdown, PNG, flags.json) into ``out_dir``.

    Returns {"per_subject_csv", "per_category_csv", "by_prompt_length_csv", "markdown", "plot",
    "flags_json": paths, "flags": {name: {...}}, "summary": {...}}.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(f"cannot create breakdown directory {str(out)!r}: {exc}; pass another --out") from None
    t = breakdown_tables(ref_records, cand_records, task_meta, alpha)
    subj, cat, lt, flags, summ = t["per_subject"], t["per_category"], t["by_prompt_length"], t["flags"], t["summary"]
    paths = {"per_subject_csv": out / "per_subject.csv", "per_category_csv": out / "per_category.csv",
             "by_prompt_length_csv": out / "by_prompt_length.csv", "markdown": out / "breakdown.md",
             "plot": out / "breakdown.png", "flags_json": out / "flags.json"}
    subj.to_csv(paths["per_subject_csv"], index=False)
    cat.to_csv(paths["per_category_csv"], index=False)
    lt.to_csv(paths["by_prompt_length_csv"], index=False)
    _plot(subj, paths["plot"], summ["chance"], labels)
    from harness.comparison.verdict import json_safe

    with open(paths["flags_json"], "w", encoding="utf-8") as f:
        json.dump(json_safe({"summary": summ, "flags": flags}), f, indent=2)
    md = [f"# Phase 5 breakdown: {labels[1]} vs {labels[0]}", "",
          f"{summ['n']} paired samples over {summ['subjects']} subjects. Accuracy {labels[0]} "
          f"{summ['ref_acc']:.1f}%, {labels[1]} {summ['cand_acc']:.1f}% ({summ['delta']:+.1f} points); "
          f"McNemar b={summ['losses_b']} c={summ['gains_c']}, p two-sided {summ['p_two_sided']:.3g}, "
          f"one-sided worse {summ['p_worse']:.3g}.", ""]
    for p in summ["pairing_problems"]:
        md.append(f"> {p}")
    md += ["## Flags", ""]
    for name, fl in flags.items():
        nums = ", ".join(f"{k} {_fmt_cell(v)}" for k, v in fl.items()
                         if k not in ("flag", "implication", "matched") and not isinstance(v, (list, dict)))
        lists = "; ".join(f"{k}: {', '.join(map(str, v)) or '-'}" for k, v in fl.items() if isinstance(v, list))
        md.append(f"- **{name}**: {'FLAGGED' if fl['flag'] else 'no'} - {fl['implication']}. ({nums}"
                  + (f"; {lists}" if lists else "") + ")")
    md += ["", f"## Per subject (McNemar per subject; q: Benjamini-Hochberg over the {len(subj)} subjects, "
           f"what colours the plot and sets near_chance; sorted by delta)", "",
           md_table(subj), "## Per category", "", md_table(cat)]
    if len(lt):
        md += ["## By prompt length (quartiles of prompt tokens)", "", md_table(lt)]
    md += ["", f"![per-subject accuracy]({paths['plot'].name})", ""]
    paths["markdown"].write_text("\n".join(md), encoding="utf-8")
    return {**{k: str(v) for k, v in paths.items()}, "flags": flags, "summary": summ}


# -- the report's compact per-subject table (the bisect report's Phase-5 table and plot data) --

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
