"""The bisect run directory a user acts on: report.md (verdict first, phases, trail with config diffs,
next steps), report.html (report.md rendered, every mentioned file linked, plots without overlaps, the
search as a tree), summary.json (documented schema),
samples.jsonl + decisive runs, repro/ (minimal failing YAML, confirming YAML, one command)."""
import json
import re
import subprocess

import pytest
import yaml

from harness.cli import main
from harness.config import Catalogue, resolve
from harness.paths import DEMO_CONFIG, DEMO_MMLU, DEMO_MODEL, EMULATOR_DEFAULT_YAML

pytestmark = pytest.mark.skipif(not (DEMO_MODEL / "config.json").is_file() or not DEMO_MMLU.is_dir()
                                or not DEMO_CONFIG.is_file(), reason="demo model/data/config not built")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    rc = main(["bisect", "--samples", "18", "--executor", "inprocess", "--quiet", "--cache-dir", str(tmp / "cache"),
               "--out", str(tmp / "reports")])  # the embedded demo: demo model, data and config
    assert rc == 0
    (d,) = list((tmp / "reports").glob("bisect-*"))
    return d


@pytest.fixture(scope="module")
def summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def test_summary_schema(summary, run_dir):
    assert summary["schema_version"] == 1
    for key in ("verdict", "outcome", "headline", "label", "culprits", "suspects", "scores", "inputs", "plan",
                "phases", "trail", "next_steps", "warnings", "environment", "knob_effects", "files", "run"):
        assert key in summary, key
    assert summary["verdict"] == "regressed" and summary["outcome"] == "culprit"
    assert summary["culprits"][0]["knobs"] == ["optimize_rope"] and summary["culprits"][0]["confirmed"] is True
    for path in summary["files"].values():  # every file the summary names exists
        assert (run_dir / path).exists(), path
    env = summary["environment"]["backends"]["candidate"]
    assert env["torch"] and env["transformers"] and env["device"] == "cpu"
    assert summary["knob_effects"]["optimize_rope"]["ran"] is True
    import harness.bisect.report
    from pathlib import Path

    schema = (Path(harness.bisect.report.__file__).parent / "SCHEMA.md").read_text()
    for key in summary:  # every top-level field is documented
        assert f"`{key}`" in schema, key


def test_report_md_verdict_first_then_phases_and_trail(summary, run_dir):
    md = (run_dir / "report.md").read_text()
    lines = [x for x in md.splitlines() if x.strip()]
    assert lines[0].startswith("# AD accuracy bisect")
    assert lines[1].startswith("**REGRESSED") and "optimize_rope" in lines[1]
    order = ["## Next steps", "## Phase 0", "## Phases 1-2", "## Phase 3", "## Search", "## Phase 6",
             "## Phase 5", "## Evaluation trail", "## Environment"]
    pos = [md.index(h) for h in order]
    assert pos == sorted(pos)
    # one trail row per evaluation, each with its verdict and its config diff
    rows = [x for x in md.splitlines() if re.match(r"\| \d+ \|", x)]
    assert len(rows) == len(summary["trail"])
    rope_row = next(r for r in rows if "| minimal + optimize_rope |" in r)
    assert "regressed" in rope_row and "transforms.optimize_rope.enabled: False -> True" in rope_row
    assert "Reproduce: `sh repro/command.sh`" in md


def _parse_html(text: str) -> dict:
    """Links, images, headings, tables and visible text of a page (stdlib HTML parser)."""
    from html.parser import HTMLParser

    class Parser(HTMLParser):
        def __init__(self):
            super().__init__()
            self.found = {"href": [], "src": [], "h2": [], "tables": 0, "text": [], "tags": set()}
            self._tag = None

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            self.found["tags"].add(tag)
            if tag == "a" and attrs.get("href"):
                self.found["href"].append(attrs["href"])
            if tag == "img":
                self.found["src"].append(attrs.get("src") or "")
            self.found["tables"] += tag == "table"
            self._tag = tag

        def handle_data(self, data):
            if self._tag == "h2":
                self.found["h2"].append(data.strip())
            self.found["text"].append(data)

    parser = Parser()
    parser.feed(text)
    parser.found["text"] = "".join(parser.found["text"])
    return parser.found


def test_report_html_rendered_and_self_contained(summary, run_dir):
    html = (run_dir / "report.html").read_text()
    page = _parse_html(html)
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)  # nothing fetched from elsewhere
    assert "<script" not in html
    # the plots are embedded PNGs; the report's Markdown is rendered, not shown raw
    assert len([s for s in page["src"] if s.startswith("data:image/png;base64,")]) == 2
    md = (run_dir / "report.md").read_text()
    assert page["tables"] == md.count("\n|---")  # every Markdown table is an HTML table
    assert "|---" not in page["text"] and "\n## " not in page["text"]
    for heading in re.findall(r"^## (.+)$", md, flags=re.M):
        assert heading in page["h2"], heading
    assert "optimize_rope" in html and "Search (adaptive) as a tree" in page["h2"]


def test_report_html_links_every_file_it_mentions(summary, run_dir):
    """Every link resolves relative to the run directory; every file of summary.json's `files` and every
    existing path the Markdown mentions in code is linked."""
    page = _parse_html((run_dir / "report.html").read_text())
    files = [h for h in page["href"] if not h.startswith("#")]
    for href in files:
        assert (run_dir / href).exists(), href
    anchors = {h[1:] for h in page["href"] if h.startswith("#")}
    html = (run_dir / "report.html").read_text()
    for anchor in anchors:
        assert f"id='{anchor}'" in html or f'id="{anchor}"' in html, anchor
    linked = {(run_dir / h).resolve() for h in files}
    for path in summary["files"].values():
        assert (run_dir / path).resolve() in linked, path
    md = (run_dir / "report.md").read_text()
    for code in re.findall(r"`([^`]+)`", md):
        for word in code.split():
            word = word.rstrip(".,;:")
            if re.fullmatch(r"[\w.\-]+(/[\w.\-]+)+/?|[\w\-]+\.(md|json|jsonl|yaml|csv|png|sh)", word) \
                    and (run_dir / word).exists():
                assert (run_dir / word).resolve() in linked, word
    assert {"summary.json", "report.md", "repro/command.sh"} <= set(files)


def test_report_plots_have_no_overlapping_text(summary):
    """The legend sits outside the axes and their labels; the phase names over the trail do not collide."""
    import matplotlib

    matplotlib.use("Agg")
    from harness.bisect.report.html import subject_figure, trail_figure

    rows = summary["phases"]["5"]["per_subject"]
    for fig in (trail_figure(summary["trail"], summary["scores"]["reference"]),
                subject_figure(rows, ("hf", "ad-emulator"))):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legend = fig.legends[0].get_window_extent(renderer)
        for ax in fig.axes:
            assert not legend.overlaps(ax.get_tightbbox(renderer)), "legend over an axis or its labels"
        names = [t.get_window_extent(renderer) for t in fig.axes[0].texts]
        assert not any(a.overlaps(b) for i, a in enumerate(names) for b in names[i + 1:])
    order = [r["subject"] for r in rows]  # the plot lists subjects top-down in the table's order
    fig = subject_figure(rows, ("hf", "ad-emulator"))
    ticks = sorted(fig.axes[0].get_yticklabels(), key=lambda t: -t.get_window_extent(fig.canvas.get_renderer()).y0)
    assert [t.get_text() for t in ticks] == order


def test_repro_files(summary, run_dir):
    cat = Catalogue.from_yaml(EMULATOR_DEFAULT_YAML)
    failing = resolve(cat, yaml.safe_load((run_dir / "repro/minimal_failing.yaml").read_text()))
    confirming = resolve(cat, yaml.safe_load((run_dir / "repro/confirming.yaml").read_text()))
    assert failing["transforms"]["optimize_rope"]["enabled"] is True
    assert failing["compile_backend"] == "torch-simple" and failing["transforms"]["fuse_rmsnorm"]["enabled"] is False
    assert confirming["transforms"]["optimize_rope"]["enabled"] is False
    assert confirming["compile_backend"] == "torch-cudagraph"  # everything else as deployed
    cmd = run_dir / "repro/command.sh"
    text = cmd.read_text()
    assert text.count("harness diagnose") == 2 and "harness compare" in text and "minimal_failing.yaml" in text
    assert cmd.stat().st_mode & 0o111
    assert subprocess.run(["sh", "-n", str(cmd)]).returncode == 0


def test_samples_and_decisive_runs(summary, run_dir):
    from harness.evaluation.records import read_records
    from harness.evaluation.rundir import read_run

    recs = read_records(run_dir / "samples.jsonl")
    assert len(recs) == summary["scores"]["n"]
    ref_run, ref_recs = read_run(run_dir / "decisive/reference")
    cand_run, cand_recs = read_run(run_dir / "decisive/candidate")
    assert ref_run["backend"] == summary["inputs"]["backend_ref"] and cand_run["backend"] == summary["inputs"]["backend"]
    assert [r["id"] for r in cand_recs] == [r["id"] for r in recs]
    assert summary["phases"]["5"]["per_subject"] and any(f.startswith("breakdown/") for f in summary["files"].values())
