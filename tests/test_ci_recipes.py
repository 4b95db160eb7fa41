"""The CI recipes in configs/ci/ work as pasted: cron makes its log directory and activates an environment,
the GitHub Actions workflow may publish JUnit results (checks: write) and installs into a virtual
environment, Jenkins installs before it runs, and nightly.sh is valid bash that keeps progress lines."""
import re
import subprocess

import yaml

from harness.paths import CONFIGS

CI = CONFIGS / "ci"


def test_cron_line_makes_its_log_dir_and_activates_an_environment():
    lines = [x for x in (CI / "crontab.txt").read_text().splitlines() if x.strip() and not x.startswith("#")]
    assert lines
    for line in lines:
        command = line.split(None, 5)[5]
        redirect = command.index("> reports/nightly/")
        assert "mkdir -p reports/nightly" in command[:redirect]
        assert re.search(r"\. \S+/bin/activate", command[:redirect])


def test_github_workflow_permissions_and_venv():
    wf = yaml.safe_load((CI / "github-actions-nightly.yml").read_text())
    assert wf["permissions"]["checks"] == "write"
    steps = wf["jobs"]["regress"]["steps"]
    install = next(s for s in steps if "pip install" in s.get("run", ""))
    assert "python -m venv" in install["run"] and ".venv/bin/pip install" in install["run"]
    assert "GITHUB_PATH" in install["run"]
    assert steps.index(install) < next(i for i, s in enumerate(steps) if "nightly.sh" in s.get("run", ""))


def test_jenkins_installs_before_the_suite():
    text = (CI / "Jenkinsfile").read_text()
    assert text.index("stage('Install')") < text.index("stage('Accuracy regression')")
    assert "pip install -e ." in text and "HARNESS_VENV" in text


def test_nightly_script_is_valid_bash_and_not_quiet():
    script = CI / "nightly.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "--bisect-on-fail" in text and "--quiet" not in text.split("python -m harness regress")[1].split("\n")[0]
    assert 'mkdir -p "$OUT"' in text
