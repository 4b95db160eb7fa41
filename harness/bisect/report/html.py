"""report.html: report.md rendered for a person, around the verdict, the links and two plots.

``render_html(summary, markdown_text, run_dir)`` fills ``report.html.j2`` (jinja2, autoescaped):

* the verdict and the culprits, then a row of links to every file of the run directory that a
  reader acts on (summary.json, report.md, repro/, samples.jsonl, decisive/, breakdown/, ...);
* the bisection trail (``trail_figure``) and the per-subject accuracy (``subject_figure``) as matplotlib
  PNGs embedded as data URIs, legends outside the axes so nothing overlaps, subjects in the order
  of the Phase-5 table;
* the search as a tree (``search_tree``): each probe under the probe (or the full config) whose
  knobs it halves, with its outcome, so the group testing can be followed step by step;
* the whole report.md rendered with markdown-it-py (tables, code blocks), every file or directory it
  mentions that exists (inside the run directory, or outside it such as graph dumps and nested
  reports) turned into a relative link (``FileLinker``).

Nothing is fetched from elsewhere and there is no script: the page works opened from disk.
"""
from __future__ import annotations

import base64
import html
import io
import os
import re
from pathlib import Path

COLORS = {"regressed": "#c0392b", "same": "#27ae60", "improved": "#2980b9", "inconclusive": "#e67e22",
          "unresolved": "#7f8c8d", None: "#34495e"}
OUTCOME_CLASS = {"fail": "regressed", "pass": "same", "untestable": "unresolved"}
MAX_LINKED_FILES = 2000  # a run directory is small; a huge one is not walked further
# the files a reader acts on, in this order, when the run directory has them
KEY_FILES = (("summary.json", "summary.json"), ("report.md", "report.md"), ("repro/command.sh", "repro command"),
             ("repro/minimal_failing.yaml", "minimal failing config"), ("repro/confirming.yaml", "confirming config"),
             ("samples.jsonl", "samples.jsonl"), ("decisive", "decisive runs"), ("breakdown", "Phase-5 breakdown"),
             ("fake_quant_debug.yaml", "fake-quant config"))


# -- plots ----------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str | None:
    if fig is None:
        return None
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _phase_of(trail: list[dict], i: int) -> str:
    """A reference run belongs to the phase of the judged step it was run for (the next one)."""
    for step in trail[i:]:
        if step["phase"] != "ref":
            return str(step["phase"])
    return str(trail[i - 1]["phase"]) if i else "ref"


def _phase_spans(trail: list[dict]) -> list[tuple[str, int, int]]:
    """(phase, first step index, last step index) of each run of consecutive steps of one phase."""
    spans: list[tuple[str, int, int]] = []
    for i, step in enumerate(trail):
        phase = _phase_of(trail, i)
        if spans and spans[-1][0] == phase:
            spans[-1] = (phase, spans[-1][1], step["index"])
        else:
            spans.append((phase, step["index"], step["index"]))
    return spans


def _trail_legend(ax, ref_score) -> list:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", color=COLORS[v], label=v)
               for v in ("regressed", "same", "improved", "inconclusive", "unresolved")]
    handles.append(Line2D([], [], ls="", marker="s", color=COLORS[None], label="reference-backend run"))
    if ref_score is not None:
        handles.append(Line2D([], [], ls="--", color="#7f8c8d", label=f"reference score {ref_score:.1f}"))
    return handles


def trail_figure(trail: list[dict], ref_score):
    """The trail as a chart: score per step, coloured by its paired verdict, squares for reference-backend
    runs, phases as shaded bands named on top, the reference score dashed; legend below the axes."""
    scored = [s for s in trail if s.get("score") is not None]
    if not scored:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(7.0, 0.38 * len(trail) + 3), 3.8), layout="constrained")
    for k, (phase, first, last) in enumerate(_phase_spans(trail)):
        ax.axvspan(first - 0.5, last + 0.5, color="#f2f2f2" if k % 2 else "#ffffff", zorder=0)
        ax.annotate(phase if phase in ("search", "ladder") else f"P{phase}", ((first + last) / 2, 1.0),
                    xycoords=("data", "axes fraction"), xytext=(0, 3), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8, color="#555")
    ax.plot([s["index"] for s in scored], [s["score"] for s in scored], color="#ccc", lw=1, zorder=1)
    for s in scored:
        ax.plot(s["index"], s["score"], ls="", marker="s" if s.get("diff_base") == "reference" else "o", ms=7,
                color=COLORS.get(s.get("verdict"), COLORS[None]), zorder=2)
    if ref_score is not None:
        ax.axhline(ref_score, color="#7f8c8d", ls="--", lw=1, zorder=1)
    ax.set_xlim(0.5, max(s["index"] for s in trail) + 0.5)
    ax.set_xticks([s["index"] for s in trail])
    ax.tick_params(labelsize=8)
    ax.set_xlabel("trail step (the numbers of the trail table)", fontsize=9)
    ax.set_ylabel("score (%)", fontsize=9)
    fig.legend(handles=_trail_legend(ax, ref_score), loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    return fig


def subject_figure(rows: list[dict], labels: tuple[str, str], chance: float | None = 25.0):
    """Per-subject accuracy of both backends, in the order of the Phase-5 table (largest loss first, at
    the top), with the candidate's change beside it; legend below the axes."""
    if not rows:
        return None
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, max(2.8, 0.34 * len(rows) + 1.6)), sharey=True,
                                   width_ratios=[2, 1], layout="constrained")
    y = list(range(len(rows)))
    ax1.barh([v - 0.2 for v in y], [r["ref_acc"] for r in rows], height=0.4, color="#7f8c8d", label=labels[0])
    ax1.barh([v + 0.2 for v in y], [r["cand_acc"] for r in rows], height=0.4, color="#c0392b", label=labels[1])
    if chance:
        ax1.axvline(chance, color="#333", ls=":", lw=1, label=f"chance {chance:g}%")
    ax1.set_yticks(y, [r["subject"] for r in rows], fontsize=8)
    ax1.set_xlim(0, 100)
    ax1.set_xlabel("accuracy (%)", fontsize=9)
    ax1.invert_yaxis()
    ax2.barh(y, [r["diff"] for r in rows], color=["#c0392b" if r["diff"] < 0 else "#27ae60" for r in rows])
    ax2.axvline(0, color="black", lw=0.8)
    ax2.set_xlabel(f"{labels[1]} - {labels[0]} (points)", fontsize=9)
    fig.legend(loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return fig


# -- the search as a tree --------------------------------------------------------------------------
def search_tree(search: dict | None, trail: list[dict]) -> list[dict]:
    """The search's probes as nested nodes ``{text, outcome, verdict, score, n, children}``: each probe
    hangs under the latest earlier probe whose knobs include all of its own (the full config at the
    root), which is how group testing halves a failing set."""
    if not search or not search.get("probes"):
        return []
    by_purpose = {}
    for step in trail:
        if step.get("phase") == "search":
            by_purpose.setdefault(step.get("purpose"), step)
    root = {"text": f"full config ({len(search.get('knobs') or [])} knobs searched)", "outcome": "fail",
            "verdict": "regressed", "score": None, "n": None, "step": None, "on": set(search.get("knobs") or []),
            "children": []}
    placed = [root]
    for probe in search["probes"]:
        on = set(probe["on"])
        parent = next((p for p in reversed(placed) if on < p["on"]), root)
        step = by_purpose.get(probe["purpose"]) or {}
        node = {"text": probe["purpose"], "outcome": probe["outcome"], "verdict": step.get("verdict"),
                "score": step.get("score"), "n": step.get("n"), "step": step.get("index"), "on": on,
                "children": []}
        parent["children"].append(node)
        placed.append(node)
    return [root]


# -- links to the files the report mentions ------------------------------------------------------
class FileLinker:
    """Turns mentions of existing files into relative links from the run directory: every file and
    directory under it (``repro/command.sh``, ``breakdown/``; a bare word such as "decisive" is not a
    mention), and absolute paths that exist (graph dumps, nested reports, the default.yaml in force)."""

    ABSOLUTE = r"/(?:[\w.+\-]+/)*[\w.+\-]+/?"

    def __init__(self, run_dir: Path | None, promised=()):
        """``promised``: run-directory files written after the page (summary.json, report.html itself)."""
        self.run_dir = Path(run_dir).resolve() if run_dir else None
        self.promised = {str(p).rstrip("/") for p in promised}
        known = sorted(set(self._walk() if self.run_dir else []) | self.promised, key=len, reverse=True)
        alternatives = [re.escape(k) for k in known] + [self.ABSOLUTE]
        self.pattern = re.compile(rf"(?<![\w.\-/])({'|'.join(alternatives)})(?![\w\-/])")

    def _walk(self) -> list[str]:
        out = []
        for path in sorted(self.run_dir.rglob("*")):
            if len(out) >= MAX_LINKED_FILES:
                break
            rel = path.relative_to(self.run_dir).as_posix()
            if path.is_dir():
                out += [rel + "/"] + ([rel] if "/" in rel else [])
            elif "/" in rel or "." in rel:
                out.append(rel)
        return out

    def href(self, path: str) -> str | None:
        """The relative link for a mentioned path, or None when it does not exist."""
        if self.run_dir is None:
            return None
        target = Path(path) if path.startswith("/") else self.run_dir / path
        if path.rstrip("/") in self.promised:
            return path
        try:
            if not target.exists():
                return None
        except OSError:
            return None
        rel = Path(os.path.relpath(target, self.run_dir)).as_posix()
        return rel + ("/" if target.is_dir() and not rel.endswith("/") else "")

    def linkify(self, escaped: str) -> str:
        """``escaped`` (HTML-escaped text) with every existing path in it wrapped in a link."""
        if self.run_dir is None:
            return escaped

        def repl(m):
            text = m.group(1)
            path = text.rstrip(".,;:")  # the end of a sentence is not part of the path
            href = self.href(html.unescape(path))
            if href is None:
                return text
            return f"<a href='{html.escape(href, quote=True)}'>{path}</a>{text[len(path):]}"

        return self.pattern.sub(repl, escaped)

    def key_files(self) -> list[dict]:
        return [{"href": href, "label": label} for path, label in KEY_FILES if (href := self.href(path))]


def render_markdown_html(text: str, linker: FileLinker) -> str:
    """report.md as HTML (markdown-it-py, CommonMark plus tables): tables scroll sideways instead of
    cutting lines, and mentioned files become links."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    rules = md.renderer.rules
    rules["text"] = lambda tokens, i, *_: linker.linkify(html.escape(tokens[i].content, quote=False))
    rules["code_inline"] = lambda tokens, i, *_: (
        "<code>" + linker.linkify(html.escape(tokens[i].content, quote=False)) + "</code>")
    rules["fence"] = lambda tokens, i, *_: (
        "<pre><code>" + linker.linkify(html.escape(tokens[i].content, quote=False)) + "</code></pre>\n")
    rules["table_open"] = lambda *_: "<div class='table'><table>\n"
    rules["table_close"] = lambda *_: "</table></div>\n"
    body = md.render(text)
    # sections get ids for the table of contents
    return re.sub(r"<h2>(.*?)</h2>", lambda m: f"<h2 id='{_slug(m.group(1))}'>{m.group(1)}</h2>", body)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", re.sub(r"<[^>]+>", "", text).lower()).strip("-")


# -- the page ------------------------------------------------------------------------------------
def _template():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(Path(__file__).parent)), autoescape=select_autoescape(["j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2")


def _scores_line(s: dict) -> str:
    scores, inp = s.get("scores") or {}, s["inputs"]
    if scores.get("reference") is None:
        return ""
    cand = "-" if scores.get("candidate") is None else f"{scores['candidate']:.1f}"
    return (f"reference {inp['backend_ref']} {scores['reference']:.1f} vs candidate {inp['backend']} {cand} on "
            f"{scores.get('n')} paired samples" + (f"; Phase-2 pattern: {s['label']}" if s.get("label") else ""))


def _body_markdown(s: dict, markdown_text: str) -> str:
    """report.md without its verdict section (the page shows the verdict above)."""
    from harness.bisect.report.markdown import SECTIONS

    head = "\n".join(SECTIONS[0](s))
    return markdown_text[len(head):] if head and markdown_text.startswith(head) else markdown_text


def render_html(s: dict, markdown_text: str, run_dir=None) -> str:
    """The page for summary ``s`` and its report.md text; ``run_dir`` resolves the links (without it,
    no links)."""
    from markupsafe import Markup

    from harness.bisect.report.markdown import OUTCOME_TITLE, culprit_text

    inp, phases = s["inputs"], s["phases"]
    linker = FileLinker(run_dir, promised=(s.get("files") or {}).values())
    body = render_markdown_html(_body_markdown(s, markdown_text), linker)
    toc = [{"id": _slug(m), "title": re.sub(r"<[^>]+>", "", m)} for m in re.findall(r"<h2[^>]*>(.*?)</h2>", body)]
    rows = (phases.get("5") or {}).get("per_subject") or []
    return _template().render(
        model=Path(str(inp["model"]).rstrip("/")).name, task=inp["task"], verdict=s["verdict"],
        outcome=s["outcome"], outcome_title=OUTCOME_TITLE.get(s["outcome"], s["outcome"]), headline=s["headline"],
        scores=_scores_line(s),
        culprits=[{"text": culprit_text(c), "confirmed": c.get("confirmed")} for c in s.get("culprits") or []],
        key_files=linker.key_files(),
        trail_png=_png(trail_figure(s["trail"], (s.get("scores") or {}).get("reference"))),
        subject_png=_png(subject_figure(rows, (inp["backend_ref"], inp["backend"]))),
        subject_comparison=(phases.get("5") or {}).get("comparison"),
        tree=search_tree(phases.get("search"), s["trail"]), strategy=(phases.get("search") or {}).get("strategy"),
        toc=toc, body=Markup(body), colors=COLORS, outcome_class=OUTCOME_CLASS)
