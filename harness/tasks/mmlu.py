"""MMLU exactly as TensorRT-LLM's evaluator runs it (``tensorrt_llm/evaluate/mmlu.py``).

Reproduced from NVIDIA/TensorRT-LLM ``tensorrt_llm/evaluate/mmlu.py`` @0c8de69a (same logic @c9bd23fd):

* ``MMLU.generate_samples``: for each subject in ``SUBJECT_TO_SUBCATEGORIES`` order, read
  ``dev/{subject}_dev.csv`` and ``test/{subject}_test.csv`` with ``pd.read_csv(path, header=None)``;
  the few-shot block is ``gen_prompt(dev_df, subject, num_fewshot)`` (the first ``num_fewshot`` dev
  rows); if ``num_samples_per_subject < test_df.shape[0]`` the test frame becomes
  ``test_df.sample(num_samples_per_subject)`` (pandas' default RNG = numpy's global state, seeded
  once by ``Evaluator.__init__``: ``random.seed``, ``np.random.seed``, ``torch.manual_seed``);
  prompt = few-shot block + ``format_example(test_df, i, include_answer=False)``; the reference is
  ``test_df.iloc[i, -1]``.
* ``num_samples_per_subject = ceil(num_samples / len(SUBJECT_TO_SUBCATEGORIES))``.
* ``compute_score``: ``output.text.strip().startswith(ref)``; per-subject, per-subcategory and
  per-category accuracies; the returned score is the sample-weighted mean x100.
* ``MMLU.command``: ``max_output_length`` 2, ``max_input_length`` 4094 (``truncate_prompt_tokens``).

Subject order: when the data set holds all 57 standard subjects, the evaluator's order (its dict
order) and only those; for any other data set (e.g. the shipped demo, whose subjects are not
MMLU's) every subject that has a ``dev/{subject}_dev.csv`` file, sorted alphabetically, and
``--samples n`` is spread over that number of subjects.  Subjects outside the evaluator's map are
aggregated under subcategory and category ``"(custom)"``.

Sample ids are ``mmlu/{subject}/{row}`` with ``row`` the 0-based data row of the test CSV.
"""
from __future__ import annotations

import csv
import math
import random
from pathlib import Path

from harness.errors import HarnessError
from harness.tasks.base import PromptOptions, Sample, Score, Task, check_seed
from harness.tasks.mmlu_format import CHOICES, format_row, frame_rows, gen_prompt

# tensorrt_llm/evaluate/mmlu.py MMLU.SUBJECT_TO_SUBCATEGORIES (dict order is the evaluator's order)
SUBJECT_TO_SUBCATEGORIES = {
    "abstract_algebra": ["math"],
    "anatomy": ["health"],
    "astronomy": ["physics"],
    "business_ethics": ["business"],
    "clinical_knowledge": ["health"],
    "college_biology": ["biology"],
    "college_chemistry": ["chemistry"],
    "college_computer_science": ["computer science"],
    "college_mathematics": ["math"],
    "college_medicine": ["health"],
    "college_physics": ["physics"],
    "computer_security": ["computer science"],
    "conceptual_physics": ["physics"],
    "econometrics": ["economics"],
    "electrical_engineering": ["engineering"],
    "elementary_mathematics": ["math"],
    "formal_logic": ["philosophy"],
    "global_facts": ["other"],
    "high_school_biology": ["biology"],
    "high_school_chemistry": ["chemistry"],
    "high_school_computer_science": ["computer science"],
    "high_school_european_history": ["history"],
    "high_school_geography": ["geography"],
    "high_school_government_and_politics": ["politics"],
    "high_school_macroeconomics": ["economics"],
    "high_school_mathematics": ["math"],
    "high_school_microeconomics": ["economics"],
    "high_school_physics": ["physics"],
    "high_school_psychology": ["psychology"],
    "high_school_statistics": ["math"],
    "high_school_us_history": ["history"],
    "high_school_world_history": ["history"],
    "human_aging": ["health"],
    "human_sexuality": ["culture"],
    "international_law": ["law"],
    "jurisprudence": ["law"],
    "logical_fallacies": ["philosophy"],
    "machine_learning": ["computer science"],
    "management": ["business"],
    "marketing": ["business"],
    "medical_genetics": ["health"],
    "miscellaneous": ["other"],
    "moral_disputes": ["philosophy"],
    "moral_scenarios": ["philosophy"],
    "nutrition": ["health"],
    "philosophy": ["philosophy"],
    "prehistory": ["history"],
    "professional_accounting": ["other"],
    "professional_law": ["law"],
    "professional_medicine": ["health"],
    "professional_psychology": ["psychology"],
    "public_relations": ["politics"],
    "security_studies": ["politics"],
    "sociology": ["culture"],
    "us_foreign_policy": ["politics"],
    "virology": ["health"],
    "world_religions": ["philosophy"],
}
# tensorrt_llm/evaluate/mmlu.py MMLU.CATEGORY_TO_SUBCATEGORIES
CATEGORY_TO_SUBCATEGORIES = {
    "STEM": ["physics", "chemistry", "biology", "computer science", "math", "engineering"],
    "humanities": ["history", "philosophy", "law"],
    "social sciences": ["politics", "culture", "economics", "geography", "psychology"],
    "other (business, health, misc.)": ["other", "business", "health"],
}
CUSTOM = "(custom)"
DEFAULT_NUM_FEWSHOT = 5


def subcategories_of(subject: str) -> list[str]:
    return SUBJECT_TO_SUBCATEGORIES.get(subject, [CUSTOM])


def categories_of(subject: str) -> list[str]:
    if subject not in SUBJECT_TO_SUBCATEGORIES:
        return [CUSTOM]
    cats = []
    for subcat in SUBJECT_TO_SUBCATEGORIES[subject]:
        cats += [c for c, subs in CATEGORY_TO_SUBCATEGORIES.items() if subcat in subs]
    return cats


def resolve_dataset(dataset: str | None, task: str = "mmlu") -> Path:
    """--dataset, else $LLM_MODELS_ROOT/datasets/mmlu, else the shipped demo; must exist."""
    from harness.paths import DATASET_SUBDIRS, default_dataset, models_root

    where = "--dataset"
    if dataset is None:
        dataset = default_dataset(task)
        where = "$LLM_MODELS_ROOT/" + DATASET_SUBDIRS[task] if models_root() else "the shipped demo"
    if dataset is None:
        raise HarnessError(
            f"no {task} data set given; pass --dataset <dir> or set LLM_MODELS_ROOT so that "
            f"$LLM_MODELS_ROOT/{DATASET_SUBDIRS[task]} exists")
    path = Path(dataset).expanduser()
    if not path.is_dir():
        raise HarnessError(
            f"{task} data set directory {str(path)!r} (from {where}) does not exist; pass --dataset <dir> "
            f"or set LLM_MODELS_ROOT so that $LLM_MODELS_ROOT/{DATASET_SUBDIRS[task]} exists")
    return path


def subjects_in(root: Path) -> list[str]:
    """The subjects to evaluate, in order (see module docstring)."""
    dev = root / "dev"
    if not dev.is_dir():
        raise HarnessError(
            f"MMLU data set {str(root)!r} has no dev/ directory; expected the Hendrycks layout "
            f"dev/{{subject}}_dev.csv and test/{{subject}}_test.csv (pass --dataset <dir>)")
    found = sorted(p.name[: -len("_dev.csv")] for p in dev.glob("*_dev.csv"))
    if not found:
        raise HarnessError(f"MMLU data set {str(root)!r} has no dev/*_dev.csv files; expected the Hendrycks "
                           f"layout dev/{{subject}}_dev.csv and test/{{subject}}_test.csv")
    if set(SUBJECT_TO_SUBCATEGORIES) <= set(found):
        return list(SUBJECT_TO_SUBCATEGORIES)
    return found


def read_text(path: Path) -> str:
    """The file as UTF-8 (pandas' default, so the evaluator fails on the same files); else a HarnessError
    naming file:line and the byte."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HarnessError(f"cannot read {path}: {exc.strerror or exc}; pass --dataset with a readable data set") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise HarnessError(f"{path}:{line} is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                           f"re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None


def check_csv(path: Path) -> None:
    """Every row has exactly 6 fields and an answer in A-D; else a HarnessError naming file:line."""
    import io

    with io.StringIO(read_text(path), newline="") as f:
        reader = csv.reader(f)
        start = 1
        n = 0
        for row in reader:
            if not row:  # blank line: pandas skips it (skip_blank_lines=True)
                start = reader.line_num + 1
                continue
            n += 1
            if len(row) != 6:
                raise HarnessError(
                    f"malformed MMLU row at {path}:{start}: {len(row)} fields, expected 6 "
                    f"(question, 4 choices, answer letter); fix or remove that line")
            if row[5] not in CHOICES:
                raise HarnessError(
                    f"malformed MMLU row at {path}:{start}: answer {row[5]!r} is not one of A, B, C, D; "
                    f"fix that line")
            start = reader.line_num + 1
    if n == 0:
        raise HarnessError(f"MMLU file {path} is empty; each subject needs dev and test rows")


def read_frame(path: Path):
    import pandas as pd

    check_csv(path)
    return pd.read_csv(path, header=None)  # exactly as the evaluator reads it


def samples_per_subject(n: int | None, num_subjects: int) -> int | None:
    """MMLU.__init__: ``math.ceil(num_samples / len(SUBJECT_TO_SUBCATEGORIES))``."""
    return None if n is None else math.ceil(n / num_subjects)


def check_samples(n: int | None) -> None:
    if n is not None and (not isinstance(n, int) or n <= 0):
        raise HarnessError(f"--samples must be a positive integer, got {n!r}; pass --samples N with N >= 1 "
                           f"(or omit it for every test row)")


def score_text(reference: str, text: str) -> Score:
    """MMLU.compute_score: ``text.strip().startswith(ref)``; parsed = first non-space char if A-D."""
    stripped = text.strip()
    parsed = stripped[:1] if stripped[:1] in CHOICES else None
    return Score(correct=stripped.startswith(reference), parsed=parsed)


class MMLUTask(Task):
    name = "mmlu"
    max_tokens = 2  # MMLU.command --max_output_length / accuracy_core MMLU.MAX_OUTPUT_LEN
    max_input_tokens = 4094  # --max_input_length / MAX_INPUT_LEN -> truncate_prompt_tokens
    stop = None
    answer_continuations = [" A", " B", " C", " D"]
    end_id_minus_one = True

    def samples(self, dataset: str | None, n: int | None, seed: int, options: PromptOptions) -> list[Sample]:
        import numpy as np

        check_samples(n)
        check_seed(seed)
        k = DEFAULT_NUM_FEWSHOT if options.num_fewshot is None else int(options.num_fewshot)
        if k < 0:
            raise HarnessError(f"--num-fewshot must be >= 0, got {k}; pass --num-fewshot 5 (the default) or 0")
        root = resolve_dataset(dataset)
        subjects = subjects_in(root)
        per_subject = samples_per_subject(n, len(subjects))
        chat = None
        if options.apply_chat_template:
            from harness.tasks.chat import ChatFormatter

            chat = ChatFormatter.from_options(options)
        # Evaluator.__init__ seeds random, numpy (and torch; nothing here draws from torch)
        random.seed(seed)
        np.random.seed(seed)
        out: list[Sample] = []
        for subject in subjects:
            dev_path = root / "dev" / f"{subject}_dev.csv"
            test_path = root / "test" / f"{subject}_test.csv"
            if not dev_path.is_file():
                raise HarnessError(f"MMLU subject {subject!r} has no dev file {dev_path}; the standard set needs "
                                   f"all 57 subjects (pass --dataset <complete Hendrycks dir>)")
            if not test_path.is_file():
                raise HarnessError(f"MMLU subject {subject!r} has no test file {test_path}; add it or remove "
                                   f"{dev_path}")
            dev_df = read_frame(dev_path)
            if k > dev_df.shape[0]:
                raise HarnessError(f"--num-fewshot {k} exceeds the {dev_df.shape[0]} rows of {dev_path}; "
                                   f"pass --num-fewshot <= {dev_df.shape[0]}")
            train_prompt = gen_prompt(dev_df, subject, k)
            test_df = read_frame(test_path)
            if per_subject is not None and per_subject < test_df.shape[0]:
                test_df = test_df.sample(per_subject)
            meta = {"subcategories": subcategories_of(subject), "categories": categories_of(subject)}
            cells = frame_rows(test_df)
            for i in range(test_df.shape[0]):
                prompt = train_prompt + format_row(cells[i], include_answer=False)
                if chat is not None:
                    prompt = chat.render(prompt)
                label = cells[i][test_df.shape[1] - 1]
                choices = [str(cells[i][j + 1]) for j in range(4)]
                row = int(test_df.index[i])
                out.append(Sample(id=f"mmlu/{subject}/{row}", subject=subject, prompt=prompt,
                                  reference=str(label), choices=choices, meta=dict(meta, row=row)))
        return out

    def score(self, sample: Sample, text: str) -> Score:
        return score_text(sample.reference, text)

    def aggregate(self, rows: list[dict]) -> dict:
        """Weighted accuracy x100 plus per-subject/subcategory/category (MMLU.compute_score)."""
        groups: dict[str, dict[str, list[bool]]] = {"per_subject": {}, "per_subcategory": {}, "per_category": {}}
        all_c: list[bool] = []
        order = {s: i for i, s in enumerate(SUBJECT_TO_SUBCATEGORIES)}
        for r in sorted(rows, key=lambda r: (order.get(r["subject"], len(order)), r["subject"])):
            c = bool(r["correct"])
            s = r["subject"]
            all_c.append(c)
            groups["per_subject"].setdefault(s, []).append(c)
            for sc in subcategories_of(s):
                groups["per_subcategory"].setdefault(sc, []).append(c)
            for cat in categories_of(s):
                groups["per_category"].setdefault(cat, []).append(c)

        def acc(cs):
            return 100.0 * sum(cs) / len(cs) if cs else float("nan")

        out = {"score": acc(all_c), "n": len(all_c)}
        for key, g in groups.items():
            out[key] = {name: {"score": acc(cs), "n": len(cs)} for name, cs in g.items()}
        return out
