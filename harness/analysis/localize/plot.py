"""The per-layer divergence plot: every compared module in the reference's completion order (grouped by
decoder layer), its propagated and isolated relative error on a log scale, the noise band shaded, and
the first divergence marked. Written as a PNG with matplotlib (Agg)."""
from __future__ import annotations

import math
from pathlib import Path

SHOW_MIN = 1e-8  # a zero error is drawn here on the log scale

SHORT = {"embed_tokens": "embed", "rotary_emb": "rope", "input_layernorm": "in-norm", "self_attn": "attn",
         "post_attention_layernorm": "post-norm", "act_fn": "act", "lm_head": "lm_head", "norm": "final norm"}


def short_label(name: str, layer: int | None) -> str:
    parts = name.split(".")
    tail = parts[-1]
    if tail.isdigit():
        return f"L{layer}"
    parent = parts[-2] if len(parts) > 1 else ""
    label = SHORT.get(tail, tail)
    if parent in ("self_attn", "mlp") and tail.endswith("proj"):
        label = tail.replace("_proj", "")
    return f"L{layer} {label}" if layer is not None else label


def _y(metric: dict | None) -> float:
    if not metric:
        return math.nan
    rel = metric.get("rel_err")
    if rel is None or not math.isfinite(rel):
        return 1e3  # non-finite: drawn at the top
    return max(rel, SHOW_MIN)


def plot_divergence(rows: list[dict], first: dict | None, path: str | Path, title: str = "") -> str:
    """Write the plot of annotated rows (harness/analysis/localize/band.py) to ``path``; returns it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(max(8.0, 0.32 * len(rows) + 2), 4.6))
    band = [max(r.get("band_isolated") or SHOW_MIN, SHOW_MIN) for r in rows]
    ax.fill_between(xs, SHOW_MIN, band, step="mid", color="tab:green", alpha=0.18, label="noise band (isolated)")
    ax.plot(xs, [_y(r.get("propagated")) for r in rows], "-o", color="tab:blue", ms=3, lw=1.2,
            label="propagated (end to end)")
    ax.plot(xs, [_y(r.get("isolated")) for r in rows], "s", color="tab:red", ms=5, label="isolated (reference inputs)")
    layers = [r.get("layer") for r in rows]
    for i in range(1, len(rows)):
        if layers[i] != layers[i - 1]:
            ax.axvline(i - 0.5, color="0.8", lw=0.8, ls=":")
    if first is not None:
        idx = next((i for i, r in enumerate(rows) if r["module"] == first["module"]), None)
        if idx is not None:
            ax.axvline(idx, color="tab:red", lw=1.0, ls="--")
            ax.annotate(f"first divergence ({first['kind']})", (idx, ax.get_ylim()[1]), rotation=90, va="top",
                        ha="right", fontsize=8, color="tab:red")
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([short_label(r["module"], r.get("layer")) for r in rows], rotation=90, fontsize=7)
    ax.set_ylabel("relative error vs reference")
    ax.set_title(title or "per-module divergence", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
