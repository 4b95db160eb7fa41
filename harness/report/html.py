"""report.html: one self-contained page (inline CSS, plots as base64 PNG): the verdict, the
per-subject plot, the bisection trail as a chart and a table, and the report text."""
from __future__ import annotations

import base64
import html
import io

COLORS = {"regressed": "#c0392b", "same": "#27ae60", "improved": "#2980b9", "inconclusive": "#e67e22",
          "unresolved": "#7f8c8d", None: "#34495e"}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def subject_plot(rows: list[dict], labels: tuple[str, str]) -> str | None:
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["subject"])
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(rows) + 2), 3.4))
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["ref_acc"] for r in rows], width=0.4, label=labels[0], color="#7f8c8d")
    ax.bar([i + 0.2 for i in x], [r["cand_acc"] for r in rows], width=0.4, label=labels[1], color="#c0392b")
    ax.set_xticks(list(x))
    ax.set_xticklabels([r["subject"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.axhline(25, color="#bbb", lw=0.8, ls=":")
    ax.legend(fontsize=8)
    ax.set_title("Per-subject accuracy (decisive comparison)", fontsize=10)
    return _png(fig)


def trail_plot(trail: list[dict], ref_score) -> str | None:
    pts = [t for t in trail if t.get("score") is not None]
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.5, 0.45 * len(trail) + 2), 3.4))
    for t in pts:
        ax.scatter(t["index"], t["score"], color=COLORS.get(t.get("verdict"), "#34495e"), s=46,
                   marker="s" if t.get("diff_base") == "reference" else "o", zorder=3)
    ax.plot([t["index"] for t in pts], [t["score"] for t in pts], color="#ccc", lw=0.8, zorder=1)
    if ref_score is not None:
        ax.axhline(ref_score, color="#7f8c8d", ls="--", lw=1, label=f"reference {ref_score:.1f}")
    last = None
    for t in trail:
        if t["phase"] != last:
            ax.axvline(t["index"] - 0.5, color="#eee", lw=0.8, zorder=0)
            ax.text(t["index"] - 0.45, ax.get_ylim()[1], t["phase"], fontsize=7, va="top", color="#555")
            last = t["phase"]
    ax.set_xlabel("evaluation (trail step)")
    ax.set_ylabel("score")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in COLORS.items() if v]
    ax.legend(handles=handles + ([ax.get_lines()[-1]] if ref_score is not None else []), fontsize=7, loc="lower left")
    ax.set_title("Bisection trail: score of every evaluation, coloured by paired verdict", fontsize=10)
    return _png(fig)


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.verdict{font-size:1.15em;padding:.7em 1em;border-radius:6px;background:#f6f6f6;border-left:6px solid #c0392b}
.same{border-left-color:#27ae60}.inconclusive{border-left-color:#e67e22}.harness_suspect{border-left-color:#8e44ad}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}td,th{border:1px solid #ddd;padding:3px 6px;
vertical-align:top}th{background:#f3f3f3}code,pre{font-size:.85em;background:#f7f7f7}pre{padding:.6em;overflow-x:auto}
.v-regressed{color:#c0392b;font-weight:600}.v-same{color:#27ae60}.v-inconclusive{color:#e67e22}
.v-unresolved{color:#7f8c8d}img{max-width:100%}"""


def render_html(s: dict, markdown_text: str) -> str:
    e = html.escape
    inp = s["inputs"]
    ph = s["phases"]
    rows = (ph.get("5") or {}).get("per_subject") or []
    subj = subject_plot(rows, (inp["backend_ref"], inp["backend"]))
    trail = trail_plot(s["trail"], (s.get("scores") or {}).get("reference"))
    verdict_class = "same" if s["verdict"] == "same" else s["outcome"]
    H = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
         f"<title>bisect: {e(str(inp['model']))} {e(inp['task'])}</title><style>{CSS}</style></head><body>",
         f"<h1>AD accuracy bisect: {e(str(inp['model']).rstrip('/').split('/')[-1])} on {e(inp['task'])}</h1>",
         f"<div class='verdict {e(verdict_class)}'><b>{e(s['verdict'].upper())}</b> - {e(s['headline'])}</div>"]
    if s.get("culprits"):
        H.append("<ul>" + "".join(
            f"<li>culprit ({'only together' if c['kind'] == 'interaction' else 'alone'}): <b>{e(', '.join(c['describe']))}</b>"
            f" - {'confirmed both ways' if c.get('confirmed') else 'not confirmed'}</li>" for c in s["culprits"]) + "</ul>")
    H.append("<h2>Next steps</h2><ol>" + "".join(f"<li>{e(x)}</li>" for x in s.get("next_steps") or []) + "</ol>")
    if trail:
        H.append(f"<h2>Bisection trail</h2><img alt='bisection trail' src='{trail}'>")
    if subj:
        H.append(f"<h2>Per-subject accuracy</h2><img alt='per-subject accuracy' src='{subj}'>")
    H.append("<h2>Trail</h2><table><tr><th>#</th><th>phase</th><th>step</th><th>verdict</th><th>score</th>"
             "<th>n</th><th>config change</th></tr>")
    for t in s["trail"]:
        diff = "<br>".join(e(d) for d in (t.get("config_diff") or [])[:8]) or e(f"= {t.get('diff_base') or ''}")
        if t.get("diff_base") == "reference":
            diff = e(f"{t.get('backend')} (reference backend)")
        v = t.get("verdict") or "-"
        score = "-" if t.get("score") is None else f"{t['score']:.1f}"
        H.append(f"<tr><td>{t['index']}</td><td>{e(t['phase'])}</td><td>{e(t['purpose'])}</td>"
                 f"<td class='v-{e(v)}'>{e(v)}</td><td>{score}</td><td>{t.get('n') or '-'}</td><td><code>{diff}</code></td></tr>")
    H.append("</table>")
    H.append("<h2>Full report</h2><pre>" + e(markdown_text) + "</pre>")
    H.append("</body></html>")
    return "\n".join(H)
