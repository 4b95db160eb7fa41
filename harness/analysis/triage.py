"""Classify a failed run's log against the crash-pattern catalogue (configs/triage_patterns.yaml).

Pure functions: ``load_patterns`` reads the catalogue, ``triage_text`` classifies one log text,
``find_unresolved`` collects the log tails of ``unresolved`` evaluations from run directories or
the evaluation cache. The command (harness/commands/triage.py) only reads files and prints.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.paths import CONFIGS

DEFAULT_PATTERNS = CONFIGS / "triage_patterns.yaml"
REQUIRED_KEYS = ("id", "title", "match", "root_cause", "fix", "source")
# Lines that look like an error when no pattern matches (shown as "first error lines").
ERROR_LINE = re.compile(
    r"(error|exception|traceback|fatal|failed|failure|abort|panic|killed|cannot|could not|"
    r"unable to|segmentation fault|core dumped)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Pattern:
    id: str
    title: str
    regexes: tuple
    root_cause: str
    fix: str
    source: str
    untestable: bool = False


@dataclass
class Match:
    pattern: str
    title: str
    line_no: int  # 1-based line in the log text
    line: str
    root_cause: str
    fix: str
    source: str


@dataclass
class Triage:
    name: str  # log path or evaluation label
    known: bool
    matches: list[Match] = field(default_factory=list)  # one per matched pattern, catalogue order
    first_errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def primary(self) -> Match | None:
        return self.matches[0] if self.matches else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["primary"] = self.primary.pattern if self.primary else None
        return d

    def lines(self) -> list[str]:
        out = [f"== {self.name} =="]
        if not self.known:
            out.append("no known pattern. First error lines:" if self.first_errors
                       else "no known pattern, and no line that looks like an error.")
            out += [f"  line {n}: {text}" for n, text in self.first_errors]
            out.append(f"  If you find the cause, add a pattern to {DEFAULT_PATTERNS} (or pass your own "
                       "catalogue with --patterns YAML).")
            return out
        m = self.primary
        out.append(f"{m.title}  [{m.pattern}]")
        out.append(f"  line {m.line_no}: {m.line}")
        out.append(f"  root cause: {m.root_cause}")
        out.append(f"  fix: {m.fix}")
        out.append(f"  source: {_openable(m.source)}")
        for other in self.matches[1:]:
            out.append(f"  also matched: {other.title} [{other.pattern}] at line {other.line_no}: "
                       f"{other.line}")
        return out


def _openable(source: str) -> str:
    """A source citing this repository's docs names the file where it is on this machine."""
    from harness.paths import REPO_ROOT

    docs = REPO_ROOT / "docs" / "method.md"
    if source.startswith("docs/method.md") and docs.is_file():
        return str(docs) + source[len("docs/method.md"):]
    return source


def load_patterns(path: str | os.PathLike | None = None) -> list[Pattern]:
    """Read and validate the catalogue; a malformed entry is a HarnessError naming it."""
    from harness.config.io import load_yaml

    path = Path(path) if path else DEFAULT_PATTERNS
    if not path.is_file():
        raise HarnessError(f"triage pattern catalogue {str(path)!r} not found; pass --patterns "
                           f"with a YAML file shaped like {DEFAULT_PATTERNS}")
    data = load_yaml(path)
    entries = data.get("patterns") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise HarnessError(f"{path}: expected a top-level 'patterns:' list of pattern entries")
    patterns, seen = [], set()
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise HarnessError(f"{path}: pattern #{i + 1} is not a mapping")
        missing = [k for k in REQUIRED_KEYS if not e.get(k)]
        if missing:
            raise HarnessError(f"{path}: pattern {e.get('id', '#' + str(i + 1))!r} lacks "
                               f"{', '.join(missing)}; every pattern needs {', '.join(REQUIRED_KEYS)}")
        if e["id"] in seen:
            raise HarnessError(f"{path}: pattern id {e['id']!r} appears twice; ids must be unique")
        seen.add(e["id"])
        raw = e["match"] if isinstance(e["match"], list) else [e["match"]]
        regexes = []
        for r in raw:
            try:
                regexes.append(re.compile(str(r), re.IGNORECASE))
            except re.error as exc:
                raise HarnessError(f"{path}: pattern {e['id']!r} has an invalid regex {r!r} ({exc}); "
                                   "fix the Python regular expression") from None
        patterns.append(Pattern(id=str(e["id"]), title=str(e["title"]), regexes=tuple(regexes),
                                root_cause=" ".join(str(e["root_cause"]).split()),
                                fix=" ".join(str(e["fix"]).split()),
                                source=" ".join(str(e["source"]).split()),
                                untestable=bool(e.get("untestable", False))))
    return patterns


def _clip(line: str, width: int = 240) -> str:
    line = line.rstrip()
    return line if len(line) <= width else line[: width - 3] + "..."


def triage_text(text: str, patterns: list[Pattern], name: str = "log", max_error_lines: int = 8) -> Triage:
    """Classify one log. Each pattern reports its first matching line; primary = catalogue order."""
    lines = (text or "").splitlines()
    matches = []
    for p in patterns:
        hit = None
        for n, line in enumerate(lines, 1):
            if any(rx.search(line) for rx in p.regexes):
                hit = (n, line)
                break
        if hit:
            matches.append(Match(p.id, p.title, hit[0], _clip(hit[1]), p.root_cause, p.fix, p.source))
    first_errors = [(n, _clip(line)) for n, line in enumerate(lines, 1) if ERROR_LINE.search(line)]
    return Triage(name=name, known=bool(matches), matches=matches, first_errors=first_errors[:max_error_lines])


def triage_file(path: str | os.PathLike, patterns: list[Pattern]) -> Triage:
    p = Path(path)
    if not p.is_file():
        raise HarnessError(f"log file {str(p)!r} does not exist; pass the path of a log file "
                           "(or --reports DIR to scan run directories)")
    return triage_text(p.read_text(errors="replace"), patterns, name=str(p))


# --- unresolved evaluations in run directories / the cache ---------------------------------------

def _unresolved_in(obj, where: str, out: list, depth: int = 0) -> None:
    """Collect (where, label, text) for every EvalResult-shaped dict with status 'unresolved' and every
    regress job result with status 'error' (harness.regress.jobs.JobResult)."""
    if depth > 6:
        return
    if isinstance(obj, dict):
        status = obj.get("status")
        if status in ("unresolved", "error") and (obj.get("log_tail") or obj.get("error")):
            job = obj.get("job") if isinstance(obj.get("job"), dict) else {}
            label = job.get("name") or obj.get("label") or (obj.get("spec") or {}).get("label") or ""
            text = "\n".join(x for x in (obj.get("error"), obj.get("log_tail")) if x)
            out.append((where, label, text))
            return
        for v in obj.values():
            if isinstance(v, (dict, list)):
                _unresolved_in(v, where, out, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)):
                _unresolved_in(v, where, out, depth + 1)


def find_unresolved(roots: list[str | os.PathLike], max_bytes: int = 20_000_000) -> list[tuple[str, str]]:
    """Log tails of unresolved evaluations under run directories / a cache directory.

    Looks at every ``*.json`` (result.json, summary.json, evaluation results) and, when ``root`` is
    a cache directory, the cache's unresolved rows. Returns (name, log text) pairs, one per distinct
    (label, log text), so a job found in both summary.json and its result.json is listed once.
    """
    found: list[tuple[str, str, str]] = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise HarnessError(f"--reports {str(root)!r} does not exist; pass a run directory, a "
                               "regress --out directory or the cache directory (.harness)")
        files = [root] if root.is_file() else sorted(root.rglob("*.json"))
        for f in files:
            try:
                if f.stat().st_size > max_bytes:
                    continue
                data = json.loads(f.read_text(errors="replace"))
            except (OSError, ValueError):
                continue
            _unresolved_in(data, str(f), found)
        found += [(where, "", text) for where, text in _unresolved_in_store(root)]
    seen, unique = set(), []
    for where, label, text in found:
        if (label, text) in seen:
            continue
        seen.add((label, text))
        unique.append((f"{where}{' [' + label + ']' if label else ''}", text))
    return unique


def _unresolved_in_store(root: Path) -> list[tuple[str, str]]:
    """Unresolved results kept in the evaluation cache (harness.evaluation.store) when ``root`` is a cache dir."""
    if not root.is_dir():
        return []
    try:
        from harness.evaluation.store import DB_NAME, Store  # owned by the store/executor engineer
    except ImportError:
        return []
    if not (root / DB_NAME).is_file():  # never create a cache where there is none
        return []
    out = []
    try:
        with Store(root) as store:
            for row in store.rows():
                if row.get("status") == "ok":
                    continue
                res = store.get(row["key"], include_unresolved=True)
                if res is None:
                    continue
                text = "\n".join(x for x in (res.error, res.log_tail) if x)
                label = row.get("label") or f"{row.get('backend')} {row.get('task')}"
                out.append((f"{root / DB_NAME} [{row['key'][:12]} {label}]", text))
    except Exception:  # noqa: BLE001 - a cache we cannot read is not a triage failure
        return out
    return out
