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


def trail_svg(trail: list[dict], ref_score) -> str | None:
    """The bisection trail as an inline SVG chart: one point per evaluation (score), coloured by its
    paired verdict, squares for reference-backend runs, the reference score dashed, phases marked."""
    pts = [t for t in trail if t.get("score") is not None]
    if not pts:
        return None
    W, H, L, R, T, B = max(520, 34 * len(trail) + 90), 260, 48, 16, 22, 40
    n = max(t["index"] for t in trail)
    lo = min([t["score"] for t in pts] + ([ref_score] if ref_score is not None else []))
    hi = max([t["score"] for t in pts] + ([ref_score] if ref_score is not None else []))
    lo, hi = max(0.0, lo - 5), min(100.0, hi + 5) if hi <= 100 else hi + 5
    if hi - lo < 1:
        hi = lo + 1

    def x(i):
        return L + (W - L - R) * ((i - 0.5) / max(n, 1))

    def y(v):
        return T + (H - T - B) * (1 - (v - lo) / (hi - lo))

    e = html.escape
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H}' font-family='sans-serif' "
           f"font-size='10' role='img' aria-label='bisection trail'>",
           f"<rect x='{L}' y='{T}' width='{W - L - R}' height='{H - T - B}' fill='#fafafa' stroke='#ddd'/>"]
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        out.append(f"<text x='{L - 6}' y='{y(v) + 3:.1f}' text-anchor='end' fill='#555'>{v:.0f}</text>")
        out.append(f"<line x1='{L}' x2='{W - R}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='#eee'/>")
    last = None
    for t in trail:
        if t["phase"] != last:
            xx = x(t["index"]) - (W - L - R) / max(n, 1) / 2
            out.append(f"<line x1='{xx:.1f}' x2='{xx:.1f}' y1='{T}' y2='{H - B}' stroke='#ccc' stroke-dasharray='2,2'/>")
            out.append(f"<text x='{xx + 2:.1f}' y='{T - 6}' fill='#555'>{e(str(t['phase']))}</text>")
            last = t["phase"]
    if ref_score is not None:
        out.append(f"<line x1='{L}' x2='{W - R}' y1='{y(ref_score):.1f}' y2='{y(ref_score):.1f}' stroke='#7f8c8d' "
                   f"stroke-dasharray='6,3'/><text x='{W - R - 4}' y='{y(ref_score) - 4:.1f}' text-anchor='end' "
                   f"fill='#7f8c8d'>reference {ref_score:.1f}</text>")
    path = " ".join(f"{x(t['index']):.1f},{y(t['score']):.1f}" for t in pts)
    out.append(f"<polyline points='{path}' fill='none' stroke='#ccc'/>")
    for t in pts:
        c = COLORS.get(t.get("verdict"), COLORS[None])
        tip = e(f"#{t['index']} {t['phase']}: {t['purpose']} -> {t.get('verdict') or 'reference'} ({t['score']:.1f})")
        if t.get("diff_base") == "reference":
            out.append(f"<rect x='{x(t['index']) - 5:.1f}' y='{y(t['score']) - 5:.1f}' width='10' height='10' "
                       f"fill='{c}'><title>{tip}</title></rect>")
        else:
            out.append(f"<circle cx='{x(t['index']):.1f}' cy='{y(t['score']):.1f}' r='5.5' fill='{c}'>"
                       f"<title>{tip}</title></circle>")
    for t in trail:
        out.append(f"<text x='{x(t['index']):.1f}' y='{H - B + 14}' text-anchor='middle' fill='#555'>{t['index']}</text>")
    out.append(f"<text x='{(L + W - R) / 2:.0f}' y='{H - 8}' text-anchor='middle' fill='#333'>evaluation (trail step); "
               "colour = paired verdict vs the reference</text>")
    lx = L + 4
    for v in ("regressed", "same", "improved", "inconclusive", "unresolved"):
        out.append(f"<circle cx='{lx + 4}' cy='{T + 10}' r='4' fill='{COLORS[v]}'/><text x='{lx + 11}' y='{T + 13}' "
                   f"fill='#333'>{v}</text>")
        lx += 12 + 6.5 * len(v)
    out.append(f"<text x='14' y='{(T + H - B) / 2:.0f}' transform='rotate(-90 14 {(T + H - B) / 2:.0f})' "
               "text-anchor='middle' fill='#333'>score</text>")
    out.append("</svg>")
    return "".join(out)


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.verdict{font-size:1.15em;padding:.7em 1em;border-radius:6px;background:#f6f6f6;border-left:6px solid #c0392b}
.same{border-left-color:#27ae60}.inconclusive{border-left-color:#e67e22}.harness_suspect{border-left-color:#8e44ad}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}td,th{border:1px solid #ddd;padding:3px 6px;
vertical-align:top}th{background:#f3f3f3}code,pre{font-size:.85em;background:#f7f7f7}pre{padding:.6em;overflow-x:auto}
.v-regressed{color:#c0392b;font-weight:600}.v-same{color:#27ae60}.v-inconclusive{color:#e67e22}
.v-unresolved{color:#7f8c8d}img{max-width:100%}"""


def _embed_png(path) -> str | None:
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii")


def render_html(s: dict, markdown_text: str, run_dir=None) -> str:
    e = html.escape
    inp = s["inputs"]
    ph = s["phases"]
    rows = (ph.get("5") or {}).get("per_subject") or []
    subj = None
    png = (s.get("files") or {}).get("breakdown:breakdown.png")
    if png and run_dir is not None:
        subj = _embed_png(f"{run_dir}/{png}")  # Phase 5's own plot, embedded
    if subj is None:
        subj = subject_plot(rows, (inp["backend_ref"], inp["backend"]))
    trail = trail_svg(s["trail"], (s.get("scores") or {}).get("reference"))
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
        H.append(f"<h2>Bisection trail</h2>{trail}")
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
