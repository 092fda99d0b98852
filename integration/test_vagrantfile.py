"""`vagrant validate` on the project's Vagrantfile: Vagrant's own check of the configuration (machines, networks,
provisioners), short of booting VMs, which this machine cannot. scripts/install-deps.sh installs Debian's vagrant."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def validate(project: Path, home: Path) -> subprocess.CompletedProcess[str]:
    vagrant = shutil.which("vagrant")
    if vagrant is None:
        pytest.fail("vagrant is not installed (scripts/install-deps.sh installs Debian's vagrant)", pytrace=False)
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(home), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    return subprocess.run([vagrant, "validate"], cwd=project, capture_output=True, text=True, timeout=300, env=env)


def test_vagrant_itself_validates_the_vagrantfile(tmp_path: Path) -> None:
    result = validate(ROOT, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout


def test_vagrant_rejects_a_broken_vagrantfile(tmp_path: Path) -> None:
    """The check above can fail: a Vagrantfile with an unknown setting does not validate."""
    broken = tmp_path / "project"
    broken.mkdir()
    text = (ROOT / "Vagrantfile").read_text()
    marker = 'Vagrant.configure("2") do |config|'
    assert marker in text, "the Vagrantfile's configure block moved; update this test"
    (broken / "Vagrantfile").write_text(text.replace(marker, marker + "\n  config.vm.no_such_setting = 1", 1))
    shutil.copytree(ROOT / "scripts", broken / "scripts")
    result = validate(broken, tmp_path)
    assert result.returncode != 0
    assert "no_such_setting" in result.stdout + result.stderr
