"""report.html: one self-contained page (inline CSS, plots as base64 PNG): the verdict, the
per-subject plot, the bisection trail as a chart and a table, and the report text."""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass

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


@dataclass(frozen=True)
class _TrailFrame:
    """The chart's geometry: canvas size, plot margins, the x range (trail steps) and the y range (scores)."""
    width: int
    height: int
    steps: int
    low: float
    high: float
    left: int = 48
    right: int = 16
    top: int = 22
    bottom: int = 40

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom

    def x(self, index) -> float:
        return self.left + self.plot_width * ((index - 0.5) / max(self.steps, 1))

    def y(self, score) -> float:
        return self.top + self.plot_height * (1 - (score - self.low) / (self.high - self.low))


def _trail_frame(trail: list[dict], scored: list[dict], ref_score) -> _TrailFrame:
    """Scores padded by 5 points (clipped to 0-100 when they fit), at least 1 point high."""
    reference = [ref_score] if ref_score is not None else []
    low = min([step["score"] for step in scored] + reference)
    high = max([step["score"] for step in scored] + reference)
    low, high = max(0.0, low - 5), min(100.0, high + 5) if high <= 100 else high + 5
    if high - low < 1:
        high = low + 1
    return _TrailFrame(width=max(520, 34 * len(trail) + 90), height=260,
                       steps=max(step["index"] for step in trail), low=low, high=high)


def _svg_grid(frame: _TrailFrame) -> list[str]:
    """The plot area and five horizontal score lines with their labels."""
    out = [f"<rect x='{frame.left}' y='{frame.top}' width='{frame.plot_width}' height='{frame.plot_height}' "
           f"fill='#fafafa' stroke='#ddd'/>"]
    for k in range(5):
        value = frame.low + (frame.high - frame.low) * k / 4
        y = frame.y(value)
        out.append(f"<text x='{frame.left - 6}' y='{y + 3:.1f}' text-anchor='end' fill='#555'>{value:.0f}</text>")
        out.append(f"<line x1='{frame.left}' x2='{frame.width - frame.right}' y1='{y:.1f}' y2='{y:.1f}' "
                   f"stroke='#eee'/>")
    return out


def _svg_phase_marks(frame: _TrailFrame, trail: list[dict]) -> list[str]:
    """A dashed vertical line and the phase name where each phase starts."""
    out, last_phase = [], None
    for step in trail:
        if step["phase"] != last_phase:
            x = frame.x(step["index"]) - frame.plot_width / max(frame.steps, 1) / 2
            out.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{frame.top}' y2='{frame.height - frame.bottom}' "
                       f"stroke='#ccc' stroke-dasharray='2,2'/>")
            phase = html.escape(str(step["phase"]))
            out.append(f"<text x='{x + 2:.1f}' y='{frame.top - 6}' fill='#555'>{phase}</text>")
            last_phase = step["phase"]
    return out


def _svg_reference_line(frame: _TrailFrame, ref_score) -> list[str]:
    """The reference run's score as a dashed line, labelled at the right."""
    if ref_score is None:
        return []
    y = frame.y(ref_score)
    return [f"<line x1='{frame.left}' x2='{frame.width - frame.right}' y1='{y:.1f}' y2='{y:.1f}' stroke='#7f8c8d' "
            f"stroke-dasharray='6,3'/><text x='{frame.width - frame.right - 4}' y='{y - 4:.1f}' text-anchor='end' "
            f"fill='#7f8c8d'>reference {ref_score:.1f}</text>"]


def _svg_points(frame: _TrailFrame, scored: list[dict]) -> list[str]:
    """The line through the scores, then one marker per evaluation: a square for a reference-backend
    run, a circle otherwise, coloured by the paired verdict, with a tooltip."""
    path = " ".join(f"{frame.x(step['index']):.1f},{frame.y(step['score']):.1f}" for step in scored)
    out = [f"<polyline points='{path}' fill='none' stroke='#ccc'/>"]
    for step in scored:
        colour = COLORS.get(step.get("verdict"), COLORS[None])
        tip = html.escape(f"#{step['index']} {step['phase']}: {step['purpose']} -> "
                          f"{step.get('verdict') or 'reference'} ({step['score']:.1f})")
        x, y = frame.x(step["index"]), frame.y(step["score"])
        if step.get("diff_base") == "reference":
            out.append(f"<rect x='{x - 5:.1f}' y='{y - 5:.1f}' width='10' height='10' "
                       f"fill='{colour}'><title>{tip}</title></rect>")
        else:
            out.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='5.5' fill='{colour}'><title>{tip}</title></circle>")
    return out


def _svg_x_axis(frame: _TrailFrame, trail: list[dict]) -> list[str]:
    """The trail step numbers under the plot and the x-axis title."""
    out = [f"<text x='{frame.x(step['index']):.1f}' y='{frame.height - frame.bottom + 14}' text-anchor='middle' "
           f"fill='#555'>{step['index']}</text>" for step in trail]
    out.append(f"<text x='{(frame.left + frame.width - frame.right) / 2:.0f}' y='{frame.height - 8}' "
               "text-anchor='middle' fill='#333'>"
               "evaluation (trail step); colour = paired verdict vs the reference</text>")
    return out


def _svg_legend(frame: _TrailFrame) -> list[str]:
    """One coloured dot per verdict along the top of the plot."""
    out, legend_x = [], frame.left + 4
    for verdict in ("regressed", "same", "improved", "inconclusive", "unresolved"):
        out.append(f"<circle cx='{legend_x + 4}' cy='{frame.top + 10}' r='4' fill='{COLORS[verdict]}'/>"
                   f"<text x='{legend_x + 11}' y='{frame.top + 13}' fill='#333'>{verdict}</text>")
        legend_x += 12 + 6.5 * len(verdict)
    return out


def _svg_y_axis_title(frame: _TrailFrame) -> list[str]:
    middle = (frame.top + frame.height - frame.bottom) / 2
    return [f"<text x='14' y='{middle:.0f}' transform='rotate(-90 14 {middle:.0f})' "
            "text-anchor='middle' fill='#333'>score</text>"]


def trail_svg(trail: list[dict], ref_score) -> str | None:
    """The bisection trail as an inline SVG chart: one point per evaluation (score), coloured by its
    paired verdict, squares for reference-backend runs, the reference score dashed, phases marked."""
    scored = [step for step in trail if step.get("score") is not None]
    if not scored:
        return None
    frame = _trail_frame(trail, scored, ref_score)
    opening = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{frame.width}' height='{frame.height}' "
               f"font-family='sans-serif' font-size='10' role='img' aria-label='bisection trail'>")
    parts = ([opening] + _svg_grid(frame) + _svg_phase_marks(frame, trail) + _svg_reference_line(frame, ref_score)
             + _svg_points(frame, scored) + _svg_x_axis(frame, trail) + _svg_legend(frame)
             + _svg_y_axis_title(frame) + ["</svg>"])
    return "".join(parts)


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
