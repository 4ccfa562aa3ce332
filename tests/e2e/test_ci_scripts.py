"""The CI scripts: .ci/install-browser never stops CI before the tests (the browser test skips instead)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bench._browser import CHROMIUM

ROOT = Path(__file__).resolve().parents[2]
BASH = shutil.which("bash")


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(0o755)


def _install_browser(stubs: Path):
    """Run the script as root with only ``stubs`` on PATH (so this machine's own chromium is not seen)."""
    _stub(stubs, "id", "echo 0")
    return subprocess.run(
        [BASH, str(ROOT / ".ci" / "install-browser")],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(stubs)},
        timeout=60,
    )


@pytest.mark.skipif(BASH is None, reason="no bash")
def test_install_browser_exits_0_with_a_clear_line_when_apt_fails(tmp_path):
    _stub(tmp_path, "apt-get", "echo 'E: Could not resolve deb.debian.org' >&2; exit 100")
    run = _install_browser(tmp_path)
    assert run.returncode == 0, run.stderr
    assert "install-browser: apt-get could not install chromium and chromium-driver" in run.stderr
    assert "the browser test will skip" in run.stderr


@pytest.mark.skipif(BASH is None, reason="no bash")
@pytest.mark.parametrize("browser", CHROMIUM)
def test_install_browser_accepts_every_browser_name_the_tests_find(tmp_path, browser):
    for name in (browser, "chromedriver"):
        _stub(tmp_path, name, "exit 0")
    _stub(tmp_path, "apt-get", f"touch {tmp_path / 'apt-ran'}; exit 100")
    run = _install_browser(tmp_path)
    assert run.returncode == 0 and run.stderr == "" and not (tmp_path / "apt-ran").exists(), run.stderr
