"""Suite parsing: models x tasks x configs x sample counts, reference sources, paths, clear errors."""
import textwrap

import pytest

from harness.errors import HarnessError
from harness.paths import DEMO_MODEL
from harness.regress.suite import load_suite


def _write(tmp_path, text, name="suite.yaml"):
    (tmp_path / "refs").mkdir(exist_ok=True)
    (tmp_path / "refs" / "mmlu.yaml").write_text("org/a:\n  - accuracy: 60\n")
    (tmp_path / "cfg").mkdir(exist_ok=True)
    (tmp_path / "cfg" / "ad.yaml").write_text("compile_backend: torch-simple\n")
    p = tmp_path / name
    p.write_text(text)
    return p


BASE = textwrap.dedent("""\
    name: n1
    references: refs
    defaults: {seed: 3, timeout: 77}
    paired: {backend: hf, alpha: 0.01}
    models:
      - {id: org/a, path: demo, reference_scores: {gsm8k: 40}}
      - {id: org/b, spec: {dtype: bfloat16}}
    tasks: [mmlu, {name: gsm8k, samples: [50]}]
    configs:
      - {name: clean, backend: ad-emulator, config: cfg/ad.yaml}
      - name: planted
        backend: ad-emulator
        config: {transforms: {fuse_x: {fault: scale_error}}}
        spec: {quant_algo: FP8}
        paired: false
        reference_score: 55.5
    samples: [100, 400]
""")


def test_cross_product_and_fields(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path.parent)  # paths resolve against the suite file, not the cwd
    s = load_suite(_write(tmp_path, BASE))
    assert (s.name, s.timeout) == ("n1", 77)
    # 2 models x (mmlu: 2 sample counts + gsm8k: 1) x 2 configs
    assert len(s.jobs) == 12
    by = {j.name: j for j in s.jobs}
    j = by["org-a/mmlu/clean/n100"]
    assert j.model_path == str(DEMO_MODEL) and j.seed == 3 and j.samples == 100
    assert j.config_path == str(tmp_path / "cfg" / "ad.yaml") and j.config == {"compile_backend": "torch-simple"}
    assert j.references == str(tmp_path / "refs") and j.reference_score is None
    assert (j.paired_backend, j.paired_alpha) == ("hf", 0.01)
    p = by["org-b/mmlu/planted/n400"]
    assert p.model_path == "org/b"  # a hub id stays as given
    assert p.spec == {"dtype": "bfloat16", "quant_algo": "FP8"}
    assert p.config_path is None and p.config["transforms"]["fuse_x"]["fault"] == "scale_error"
    assert p.paired_backend is None and p.reference_score == 55.5
    assert by["org-a/gsm8k/clean/n50"].reference_score == 40.0
    assert s.select(["*planted/n400"]).jobs == [by["org-a/mmlu/planted/n400"], p]


@pytest.mark.parametrize("patch, message", [
    (("name: n1", "name: n1\nbogus: 1"), "unknown key(s) 'bogus'"),
    (("backend: ad-emulator, config", "backend: nope, config"), "unknown backend 'nope'"),
    (("tasks: [mmlu,", "tasks: [mmmlu,"), "unknown task 'mmmlu'"),
    (("config: cfg/ad.yaml", "config: cfg/missing.yaml"), "config of 'clean' 'cfg/missing.yaml' not found"),
    (("spec: {quant_algo: FP8}", "spec: {quant: FP8}"), "unknown key(s) 'quant'"),
    (("samples: [100, 400]", "samples: [100, -1]"), "must be a positive integer"),
    (("name: planted", "name: clean"), "job names repeat"),
])
def test_bad_suites_are_clear_errors(tmp_path, patch, message):
    with pytest.raises(HarnessError) as exc:
        load_suite(_write(tmp_path, BASE.replace(*patch)))
    assert message in str(exc.value)


def test_job_without_any_reference_is_an_error(tmp_path):
    text = BASE.replace("references: refs\n", "").replace("paired: {backend: hf, alpha: 0.01}\n", "")
    with pytest.raises(HarnessError, match="has no reference"):
        load_suite(_write(tmp_path, text))
