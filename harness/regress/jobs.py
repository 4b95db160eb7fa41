"""A regression job (one model x task x backend config x sample count) and its outcome.

Plain dataclasses that round-trip through JSON: ``Job`` is what the suite expands to,
``JobResult`` what running it produced. ``judge`` is the pure pass/fail rule.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

# outcome of a job; JUnit maps failed -> <failure>, error -> <error>, skipped -> <skipped>
STATUSES = ("passed", "failed", "error", "skipped")


@dataclass
class Job:
    name: str  # "<model>/<task>/<config>/n<samples>", unique in the suite
    model_id: str  # key in the reference YAML (HF id)
    model_path: str  # what the backend loads
    task: str
    config_name: str
    backend: str
    config_path: str | None  # user AD-style overlay (None: backend defaults)
    config: dict  # the overlay's content (as loaded)
    samples: int | None
    seed: int = 0
    dataset: str | None = None
    spec: dict = field(default_factory=dict)  # reference spec keys (dtype, quant_algo, ...)
    references: str | None = None  # references/ dir or YAML file
    reference_score: float | None = None  # inline reference (wins over references)
    reference_overrides: dict = field(default_factory=dict)  # alpha/beta/sigma/num_samples for inline
    paired_backend: str | None = None  # reference backend run on the same samples (e.g. hf)
    paired_config_path: str | None = None
    paired_config: dict = field(default_factory=dict)
    paired_alpha: float = 0.05
    plugins: list[str] = field(default_factory=list)
    prompt_options: dict = field(default_factory=dict)
    sampling: dict = field(default_factory=dict)
    bisect: bool = True  # eligible for --bisect-on-fail (AD-style backends only)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class JobResult:
    job: dict  # Job.to_dict()
    status: str  # one of STATUSES
    messages: list[str] = field(default_factory=list)  # why it failed / errored, with the numbers
    score: float | None = None  # candidate accuracy in percent
    n: int | None = None  # samples evaluated
    reference: dict | None = None  # Reference.to_dict() (matched entry + test parameters)
    threshold: float | None = None
    theta: float | None = None
    gate_passed: bool | None = None  # TensorRT-LLM hypothesis test (None: no reference)
    paired: dict | None = None  # {backend, score, verdict, ...Comparison.to_dict()}
    versions: dict = field(default_factory=dict)
    config_hash: str | None = None
    duration_s: float = 0.0
    cache_hit: bool | None = None
    error: str | None = None
    log_tail: str | None = None
    triage: dict | None = None  # harness.analysis.triage.Triage.to_dict() for errors
    bisect_report: str | None = None  # path of the bisect report for a failing AD job
    bisect_status: str | None = None
    # what that bisect found, from its summary.json: verdict, outcome, culprits (knob groups, confirmed),
    # culprit (one line naming them), headline, summary (path)
    bisect: dict | None = None
    result_dir: str | None = None  # where this job's records / result live
    executor: dict | None = None  # the candidate evaluation's executor info (local pid / Slurm job id, host)

    @property
    def name(self) -> str:
        return self.job["name"]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "JobResult":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def judge(score: float | None, threshold: float | None, higher_is_better: bool, paired_verdict: str | None,
          candidate_unresolved: bool, paired_unresolved: bool) -> tuple[str, list[str]]:
    """Pass/fail rule. Returns (status, reasons).

    error   : the candidate (or the paired reference run) crashed / hung / ran out of memory;
    failed  : the TensorRT-LLM threshold test fails (score below threshold) or the paired verdict
              is ``regressed``;
    passed  : otherwise (``inconclusive`` / ``same`` / ``improved`` paired verdicts pass).
    """
    if candidate_unresolved:
        return "error", ["candidate evaluation unresolved (crash, timeout or out of memory)"]
    reasons = []
    if threshold is not None and score is not None:
        ok = score >= threshold if higher_is_better else score <= threshold
        if not ok:
            op = "<" if higher_is_better else ">"
            reasons.append(f"threshold: score {score:.2f} {op} threshold {threshold:.2f}")
    if paired_verdict == "regressed":
        reasons.append("paired: verdict regressed against the reference backend on the same samples")
    if reasons:
        return "failed", reasons
    if paired_unresolved:
        return "error", ["paired reference evaluation unresolved (crash, timeout or out of memory)"]
    return "passed", []
