"""Regression history: SQLite, one row per job per run, with versions and scores; trends and plots.

Tables
  runs(run_id, suite, started_at, finished_at, host, git_commit, versions, out_dir, exit_code)
  results(run_id, job, started_at, model, task, config, backend, samples, n, status, score, reference,
          threshold, theta, gate_passed, paired_backend, paired_score, paired_verdict, p_value,
          config_hash, versions, duration_s, bisect_report)   -- PRIMARY KEY (run_id, job)
Writes happen once per run in one transaction; readers (``history`` command) never write.
"""
from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

from harness.errors import HarnessError
from harness.regress.jobs import JobResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, suite TEXT, started_at TEXT, finished_at TEXT, host TEXT,
    git_commit TEXT, versions TEXT, out_dir TEXT, exit_code INTEGER
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL, job TEXT NOT NULL, started_at TEXT, model TEXT, task TEXT, config TEXT,
    backend TEXT, samples INTEGER, n INTEGER, status TEXT, score REAL, reference REAL, threshold REAL,
    theta REAL, gate_passed INTEGER, paired_backend TEXT, paired_score REAL, paired_verdict TEXT,
    p_value REAL, config_hash TEXT, versions TEXT, duration_s REAL, bisect_report TEXT,
    PRIMARY KEY (run_id, job)
);
CREATE INDEX IF NOT EXISTS results_model_task ON results (model, task, started_at);
"""
COLUMNS = ("run_id", "job", "started_at", "model", "task", "config", "backend", "samples", "n", "status",
           "score", "reference", "threshold", "theta", "gate_passed", "paired_backend", "paired_score",
           "paired_verdict", "p_value", "config_hash", "versions", "duration_s", "bisect_report")


def connect(path: str | os.PathLike, create: bool = True) -> sqlite3.Connection:
    p = Path(path)
    if not create and not p.is_file():
        raise HarnessError(f"history database {str(p)!r} does not exist; run `python -m harness regress "
                           f"--suite ... --history {p}` first, or pass --db with an existing file")
    p.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(p), timeout=30)
    try:
        con.executescript(SCHEMA)
    except sqlite3.DatabaseError as exc:
        con.close()
        raise HarnessError(f"{str(p)!r} is not a harness history database ({exc}); pass another --history/--db") from None
    return con


def result_row(run_id: str, started_at: str, r: JobResult) -> dict:
    j = r.job
    p = r.paired or {}
    return {
        "run_id": run_id, "job": r.name, "started_at": started_at, "model": j["model_id"], "task": j["task"],
        "config": j["config_name"], "backend": j["backend"], "samples": j.get("samples"), "n": r.n,
        "status": r.status, "score": r.score, "reference": (r.reference or {}).get("accuracy"),
        "threshold": r.threshold, "theta": r.theta,
        "gate_passed": None if r.gate_passed is None else int(bool(r.gate_passed)),
        "paired_backend": p.get("backend"), "paired_score": p.get("score"), "paired_verdict": p.get("verdict"),
        "p_value": p.get("p_value"), "config_hash": r.config_hash, "versions": json.dumps(r.versions, sort_keys=True),
        "duration_s": r.duration_s, "bisect_report": r.bisect_report,
    }


def record_run(path: str | os.PathLike, run: dict, results: list[JobResult]) -> int:
    """Insert one run and one row per job (replacing rows of the same run_id). Returns rows written."""
    with closing(connect(path)) as con, con:
        con.execute(
            "INSERT OR REPLACE INTO runs (run_id, suite, started_at, finished_at, host, git_commit, versions, "
            "out_dir, exit_code) VALUES (?,?,?,?,?,?,?,?,?)",
            (run["run_id"], run.get("suite"), run.get("started_at"), run.get("finished_at"), run.get("host"),
             run.get("git_commit"), json.dumps(run.get("versions") or {}, sort_keys=True), run.get("out_dir"),
             run.get("exit_code")))
        rows = [result_row(run["run_id"], run.get("started_at"), r) for r in results]
        con.executemany(
            f"INSERT OR REPLACE INTO results ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})",
            [tuple(row[c] for c in COLUMNS) for row in rows])
    return len(rows)


def load(path: str | os.PathLike, model: str | None = None, task: str | None = None):
    """All result rows (pandas DataFrame, oldest first), optionally for one model / task."""
    import pandas as pd

    where, args = [], []
    if model:
        where.append("model = ?")
        args.append(model)
    if task:
        where.append("task = ?")
        args.append(task)
    sql = "SELECT * FROM results" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY started_at, job"
    with closing(connect(path, create=False)) as con:
        df = pd.read_sql_query(sql, con, params=args)
    df["versions"] = df["versions"].map(lambda s: json.loads(s) if isinstance(s, str) and s else {})
    return df


def trends(df):
    """Per (model, task, config): runs, latest score/status, previous score, delta, mean, min, max."""
    import pandas as pd

    rows = []
    for (model, task, config), g in df.groupby(["model", "task", "config"], sort=True):
        g = g.sort_values("started_at")
        scores = g["score"].dropna()
        last = g.iloc[-1]
        prev = scores.iloc[-2] if len(scores) >= 2 else None
        latest = last["score"] if pd.notna(last["score"]) else None
        rows.append({
            "model": model, "task": task, "config": config, "runs": len(g),
            "latest": latest, "previous": prev,
            "delta": (latest - prev) if latest is not None and prev is not None else None,
            "mean": scores.mean() if len(scores) else None, "min": scores.min() if len(scores) else None,
            "max": scores.max() if len(scores) else None, "reference": last["reference"],
            "threshold": last["threshold"], "last_status": last["status"], "last_run": last["started_at"],
            "failures": int((g["status"] == "failed").sum()), "errors": int((g["status"] == "error").sum()),
        })
    return pd.DataFrame(rows, columns=["model", "task", "config", "runs", "latest", "previous", "delta", "mean",
                                       "min", "max", "reference", "threshold", "last_status", "last_run",
                                       "failures", "errors"])


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(s)).strip("_") or "x"


def plot_trends(df, out_dir: str | os.PathLike) -> list[str]:
    """One PNG per (model, task) (``trend_figure``). Returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for (model, task), g in df.groupby(["model", "task"], sort=True):
        fig = trend_figure(model, task, g)
        path = out_dir / f"trend_{_slug(model)}_{_slug(task)}.png"
        fig.savefig(path, dpi=100)
        import matplotlib.pyplot as plt

        plt.close(fig)
        paths.append(str(path))
    return paths


def trend_figure(model: str, task: str, g):
    """Score per run for each config, its threshold (dotted) and the reference (dashed), failed runs
    marked with x; every line and marker in the legend (below the axes); run dates with their year."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(g["started_at"].unique())
    fig, ax = plt.subplots(figsize=(8.5, 4.8), layout="constrained")
    _plot_configs(ax, g, {r: i for i, r in enumerate(runs)})
    ref = g["reference"].dropna()
    if len(ref):
        ax.axhline(ref.iloc[-1], color="black", linestyle="--", linewidth=1, label=f"reference {ref.iloc[-1]:.2f}")
    ax.set_xticks(range(len(runs)), [_run_date(r) for r in runs], rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("run started (UTC)", fontsize=9)
    ax.set_ylabel(f"{task} score (%)")
    ax.set_title(f"{model} / {task}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return fig


def _run_date(started_at) -> str:
    import pandas as pd

    return pd.Timestamp(started_at).strftime("%Y-%m-%d %H:%M") if started_at else "?"


def _plot_configs(ax, g, pos: dict) -> None:
    """Each config's scores, its failed runs (x) and its threshold (dotted), each with a legend entry."""
    failed_label = "failed or unresolved"
    for config, c in g.groupby("config", sort=True):
        c = c.sort_values("started_at")
        x = [pos[r] for r in c["started_at"]]
        line, = ax.plot(x, c["score"], marker="o", label=str(config))
        bad = c[c["status"].isin(["failed", "error"])]
        if len(bad):
            ax.plot([pos[r] for r in bad["started_at"]], bad["score"].fillna(0), "x", color=line.get_color(),
                    markersize=10, mew=2, label=failed_label)
            failed_label = "_nolegend_"
        if len(c["threshold"].dropna()):
            ax.step(x, c["threshold"], where="mid", linestyle=":", color=line.get_color(), alpha=0.7,
                    label=f"{config}: threshold")
