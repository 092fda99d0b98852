"""The Vagrantfile, the lab's box recipe and the provisioning script, short of booting VMs (test_lab.py boots them).

`vagrant validate` is Vagrant's own check of the configuration (machines, networks, provisioners); with the libvirt
provider it also checks that provider's settings, as `scripts/lab.sh up` uses them. Debian's vagrant comes from
scripts/install-deps.sh, the vagrant-libvirt plugin and the rest of the lab's host packages from
`scripts/lab.sh packages`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from integration.lab_nodes import ADDRESSES, BACKEND_NODE

ROOT = Path(__file__).resolve().parent.parent
# what scripts/lab.sh exports for Vagrant (the box need not exist to validate)
LAB_ENV = {"VAGRANT_DEFAULT_PROVIDER": "libvirt", "CF_LIBVIRT_DRIVER": "qemu", "CF_LAB_BOX": "cronframework-lab-test"}


PACKAGES_BUDGET = 900  # seconds: apt-get of the lab's host packages on a fresh machine


@pytest.fixture(scope="module")
def lab_packages() -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "lab.sh"), "packages"], capture_output=True, text=True, timeout=PACKAGES_BUDGET
    )
    assert result.returncode == 0, result.stderr[-2000:]


def validate(project: Path, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    vagrant = shutil.which("vagrant")
    if vagrant is None:
        pytest.fail("vagrant is not installed (scripts/install-deps.sh installs Debian's vagrant)", pytrace=False)
    base = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(home), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    return subprocess.run(
        [vagrant, "validate"], cwd=project, capture_output=True, text=True, timeout=300, env={**base, **(env or {})}
    )


def broken_copy(tmp_path: Path, after: str, line: str) -> Path:
    """A copy of the project's Vagrantfile (and scripts) with `line` added after the line `after`."""
    project = tmp_path / "project"
    project.mkdir()
    text = (ROOT / "Vagrantfile").read_text()
    assert after in text, f"{after!r} moved in the Vagrantfile; update this test"
    (project / "Vagrantfile").write_text(text.replace(after, after + "\n" + line, 1))
    shutil.copytree(ROOT / "scripts", project / "scripts")
    return project


def test_vagrant_itself_validates_the_vagrantfile(tmp_path: Path) -> None:
    result = validate(ROOT, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout


def test_vagrant_rejects_a_broken_vagrantfile(tmp_path: Path) -> None:
    """The check above can fail: a Vagrantfile with an unknown setting does not validate."""
    project = broken_copy(tmp_path, 'Vagrant.configure("2") do |config|', "  config.vm.no_such_setting = 1")
    result = validate(project, tmp_path)
    assert result.returncode != 0
    assert "no_such_setting" in result.stdout + result.stderr


@pytest.mark.timeout(PACKAGES_BUDGET + 300)  # its fixture may install the packages
def test_the_libvirt_provider_settings_validate(tmp_path: Path, lab_packages: None) -> None:
    result = validate(ROOT, tmp_path, LAB_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout


@pytest.mark.timeout(PACKAGES_BUDGET + 300)  # its fixture may install the packages
def test_an_unknown_libvirt_setting_is_rejected(tmp_path: Path, lab_packages: None) -> None:
    """The libvirt provider's own validation runs: an unknown provider setting fails, by name."""
    project = broken_copy(tmp_path, "        lv.driver = LIBVIRT_DRIVER", "        lv.no_such_libvirt_setting = 1")
    result = validate(project, tmp_path, LAB_ENV)
    assert result.returncode != 0
    assert "no_such_libvirt_setting" in result.stdout + result.stderr


def test_provision_script_check_mode_finds_every_ci_script() -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "provision.sh"), "--check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for script in ("install-deps.sh", "zookeeper.sh", "dockerd.sh", "test-image.sh", "nomad.sh"):
        assert f"ok scripts/{script}" in result.stdout, result.stdout


def test_vagrantfile_is_valid_ruby_with_three_provisioned_nodes() -> None:
    text = (ROOT / "Vagrantfile").read_text()
    ruby = _ruby()
    result = subprocess.run([ruby, "-c", str(ROOT / "Vagrantfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Syntax OK" in result.stdout, result.stderr
    listed = subprocess.run(
        [ruby, "-e", _LIST_NODES, str(ROOT / "Vagrantfile")], capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    *rows, backend_host = listed.stdout.splitlines()
    nodes = [line.split() for line in rows]
    assert [n[0] for n in nodes] == ["cf1", "cf2", "cf3"], listed.stdout
    assert all("zookeeper" in n[2] and "scheduler" in n[2] for n in nodes)
    assert [n[0] for n in nodes if "nomad" in n[2] and "docker" in n[2]] == [BACKEND_NODE]
    # the lab's harness reaches the nodes at the Vagrantfile's addresses
    assert {n[0]: n[1] for n in nodes} == ADDRESSES and backend_host == ADDRESSES[BACKEND_NODE]
    assert 'path: "scripts/provision.sh"' in text and '"private_network"' in text


# Evaluates the Vagrantfile against a stub `Vagrant` that records each defined machine and its provisioning; a block
# gets as many stubs as it takes (a provider block's second one is its override).
_LIST_NODES = r"""
class Rec
  def initialize(log = []) @log = log end
  def method_missing(*args, **kw, &blk) blk.call(*Array.new([blk.arity, 1].max) { Rec.new(@log) }) if blk; self end
  def respond_to_missing?(*) true end
end
module Vagrant
  def self.configure(_v)
    cfg = Rec.new
    yield cfg
  end
end
load ARGV[0]
NODES.each { |n| puts [n[:name], n[:ip], n[:roles].join(",")].join(" ") }
puts BACKEND_HOST
"""


def _ruby() -> str:
    """Debian's ruby, installed on first use: the only honest parse of a Vagrantfile is Ruby's own."""
    found = shutil.which("ruby")
    if found:
        return found
    install = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "ruby"], capture_output=True, text=True, timeout=600,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )  # fmt: skip
    found = shutil.which("ruby")
    if not found:
        pytest.fail(f"ruby is needed to parse the Vagrantfile and could not be installed: {install.stderr[-500:]}")
    return found


# -- the box recipe ---------------------------------------------------------------------------------------------
def recipe(project: Path) -> dict[str, str]:
    result = subprocess.run(
        ["bash", str(project / "scripts" / "lab-box.sh"), "--recipe"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return dict(line.split(" ", 1) for line in result.stdout.splitlines())


def project_copy(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "requirements").mkdir(parents=True)
    shutil.copytree(ROOT / "scripts", project / "scripts")
    shutil.copy(ROOT / "pyproject.toml", project)
    shutil.copy(ROOT / "requirements" / "test.lock", project / "requirements")
    return project


def test_the_box_carries_every_package_the_provisioning_installs() -> None:
    """The guests are offline: whatever install-deps.sh, zookeeper.sh, dockerd.sh and test-image.sh would install
    must be in the box already."""
    text = (ROOT / "scripts" / "install-deps.sh").read_text()
    line = next(line for line in text.splitlines() if line.startswith("for pkg in "))
    listed = recipe(ROOT)["provisioning"].split()
    assert set(line.removeprefix("for pkg in ").removesuffix("; do").split()) <= set(listed)
    assert {"zookeeper", "docker.io", "busybox-static"} <= set(listed)
    assert "setuptools" in recipe(ROOT)["build-requirements"]


def test_the_box_is_rebuilt_only_when_its_recipe_changes(tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    first = recipe(project)["hash"]
    assert recipe(project)["hash"] == first
    (project / "README.md").write_text("not part of the recipe\n")
    assert recipe(project)["hash"] == first
    lock = project / "requirements" / "test.lock"
    lock.write_text(lock.read_text() + "# a changed lock\n")
    assert recipe(project)["hash"] != first
