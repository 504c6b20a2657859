"""scripts/setup.sh, run against a stand-in interpreter that records what pip is asked to install: the app's
requirements, the tests' with --dev, only the demo generator's with --demo, and nothing on a second run."""

import shutil
import subprocess

import pytest

from .conftest import ROOT


@pytest.fixture
def project(tmp_path):
    for name in ("requirements.txt", "requirements-dev.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/usr/bin/env bash\necho "$*" >> {tmp_path / "pip.log"}\n')
    python.chmod(0o755)
    return tmp_path


def _setup(project, *args) -> list[str]:
    log = project / "pip.log"
    log.unlink(missing_ok=True)
    subprocess.run(["bash", "scripts/setup.sh", *args], cwd=project, check=True, capture_output=True, timeout=60)
    return log.read_text().splitlines() if log.exists() else []


def test_the_app_set_up_installs_cpu_torch_first_then_its_requirements_once(project):
    calls = _setup(project)
    assert "torch==2.13.0" in calls[1] and "--no-compile" in calls[1]  # after pip itself, before anything else
    assert calls[2].endswith("-r requirements.txt") and calls[3].endswith("--no-deps -e .")
    assert _setup(project) == []  # up to date: nothing to install
    assert _setup(project, "--dev")[2].endswith("-r requirements-dev.txt")  # the tests need more
    assert _setup(project) == [] and _setup(project, "--dev") == []  # a dev set-up serves the app too


def test_the_demo_set_up_installs_only_what_the_stamps_need(project):
    (first, editable) = _setup(project, "--demo")
    assert "torch" not in first and "galsim==" in first.lower() and "numpy==" in first
    assert editable.endswith("--no-deps -e .")
    _setup(project)
    assert _setup(project, "--demo") == []  # set up already
