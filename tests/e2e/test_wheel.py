"""The built wheel works outside a checkout: a fresh venv, the `segkit` command, shipped configs by name.

The venv reuses the shared environment's packages through a .pth line (no torch download), added only
after the wheel is installed so pip never sees (or touches) the environment this test runs in."""

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["segkit", "configs", "pyproject.toml", "setup.py", "README.md"]


def run(cmd, cwd, env=None):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv holding the freshly built segkit wheel and, behind it, this interpreter's packages."""
    if importlib_missing("pip"):
        pytest.skip("pip is needed to build and install the wheel")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:  # a copy, so building leaves no build/ or egg-info in the checkout
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, src / name)
    shutil.rmtree(src / "segkit" / "__pycache__", ignore_errors=True)
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist", src],
        cwd=tmp,
    )
    wheel = next((tmp / "dist").glob("segkit-*.whl"))
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel], cwd=tmp)
    target = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp).strip())
    shared = [sysconfig.get_path("purelib"), *site.getsitepackages()]
    (target / "zz_shared_packages.pth").write_text("\n".join(dict.fromkeys(shared)) + "\n")
    return venv


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


@pytest.mark.slow  # about 50 s of CPU (2.5 min on the shared, overloaded machine): wheel, venv, four commands
def test_installed_command_trains_evaluates_and_infers(installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{installed / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    segkit = str(installed / "bin" / "segkit")
    where = run([installed / "bin" / "python", "-c", "import segkit; print(segkit.__file__)"], cwd=tmp_path, env=env)
    assert str(installed) in where and str(ROOT) not in where, where
    assert "sample/fcn_r18" in run([segkit, "configs"], cwd=tmp_path, env=env).split()
    run([segkit, "sample-data", "data/sample"], cwd=tmp_path, env=env)
    run(
        [
            segkit,
            "train",
            "sample/fcn_r18",
            "train.iterations=2",
            "train.batch_size=2",
            "train.val_interval=2",
            "train.checkpoint_interval=2",
            "train.device=cpu",
            "data.num_workers=0",
            "data.crop_size=[64,64]",
            "model.backbone.output_stride=32",
            "train.progress=log",
        ],
        cwd=tmp_path,
        env=env,
    )
    best = tmp_path / "work_dirs/sample_fcn_r18/best.pth"
    assert best.is_file()
    assert "mIoU" in run(
        [segkit, "eval", "work_dirs/sample_fcn_r18/best.pth", "--device", "cpu"], cwd=tmp_path, env=env
    )
    run([segkit, "infer", "data/sample/images/val/val_0000.png", "--device", "cpu"], cwd=tmp_path, env=env)
    assert list(tmp_path.glob("outputs/**/val_0000*mask.png")), sorted(map(str, tmp_path.rglob("*.png")))[-5:]
