"""Shared fixtures. Everything runs on the CPU; real data comes from ../shared/data when present."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SEGKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))

torch.set_num_threads(min(2, torch.get_num_threads()))


# git ignores these, yet they are where a run without tmp_path writes (default work dir, infer output)
_IGNORED_OUTPUTS = ("work_dirs", "outputs")


def _repo_changes() -> set | None:
    """Paths git reports as changed or untracked (ignored ones such as data/sample, .venv-clients/ left out)
    plus the files under the ignored output folders; None outside a git checkout (an sdist)."""
    try:
        run = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if run.returncode != 0:
        return None
    outputs = {str(path.relative_to(ROOT)) for name in _IGNORED_OUTPUTS for path in (ROOT / name).rglob("*")}
    return set(run.stdout.splitlines()) | outputs


@pytest.fixture(scope="session", autouse=True)
def repo_stays_clean():
    """Fails the run when a test wrote into the checkout (a work dir or output without tmp_path): such files
    end up committed or make the next run differ."""
    before = _repo_changes()
    yield
    after = _repo_changes()
    if before is not None and after is not None and after - before:
        pytest.fail("tests wrote into the repository (use tmp_path): " + ", ".join(sorted(after - before)))


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    """A small copy of the built-in sample set (same generator, fewer images)."""
    from segkit.data.sample import generate

    return generate(tmp_path_factory.mktemp("sample"), splits={"train": 16, "val": 6})


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    root = SHARED_DATA / "camvid"
    if not root.is_dir():
        pytest.skip(f"CamVid not found at {root} (set SEGKIT_SHARED_DATA)")
    return root


@pytest.fixture(scope="session")
def isbi_root() -> Path:
    root = SHARED_DATA / "isbi_membrane"
    if not root.is_dir():
        pytest.skip(f"ISBI membrane set not found at {root} (set SEGKIT_SHARED_DATA)")
    return root


# --------------------------------------------------------------------------- trained checkpoints (eval/infer)
def _train_tiny(work: Path, config: str | None, overrides: list) -> Path:
    from segkit.config import load_config
    from segkit.training.engine import train

    cfg = load_config(
        config,
        [
            "data.num_workers=0",
            "train.device=cpu",
            "train.batch_size=2",
            "train.iterations=3",
            "train.val_interval=3",
            "train.checkpoint_interval=3",
            "train.log_interval=3",
        ]
        + overrides,
    )
    train(cfg, str(work))
    return work


@pytest.fixture(scope="session")
def sample_run(sample_root, tmp_path_factory) -> Path:
    """Work dir of a DeepLabV3+ R18 trained 3 steps on the sample set by segkit.training.engine.train:
    last.pth, best.pth, metrics.jsonl (the validation mIoU it logged), config.yaml."""
    return _train_tiny(
        tmp_path_factory.mktemp("sample_run"),
        str(ROOT / "configs/sample/deeplabv3plus_r18.yaml"),
        [f"data.root={sample_root}"],
    )


@pytest.fixture(scope="session")
def camvid_small(camvid_root, tmp_path_factory) -> Path:
    """A CamVid-layout folder linking 4 train and 3 val images of the real set (kept small for speed)."""
    small = tmp_path_factory.mktemp("camvid_small")
    for split, count in (("train", 4), ("val", 3)):
        for sub in (split, f"{split}annot"):
            (small / sub).mkdir()
        for image in sorted((camvid_root / split).iterdir())[:count]:
            (small / split / image.name).symlink_to(image)
            mask = camvid_root / f"{split}annot" / f"{image.stem}.png"
            (small / f"{split}annot" / mask.name).symlink_to(mask)
    return small


@pytest.fixture(scope="session")
def camvid_run(camvid_small, tmp_path_factory) -> Path:
    """Work dir of an FCN R18 (output stride 32) trained 3 steps on CamVid images (11 classes, ignore 11)."""
    return _train_tiny(
        tmp_path_factory.mktemp("camvid_run"),
        None,
        [
            "name=camvid_tiny",
            "data.format=camvid",
            f"data.root={camvid_small}",
            "data.num_classes=11",
            "data.ignore_index=11",
            "data.crop_size=[96,128]",
            "model.backbone.name=resnet18",
            "model.backbone.output_stride=32",
            "model.decoder.name=fcn",
        ],
    )


@pytest.fixture
def full_tmpfs(tmp_path):
    """(folder, fill): a folder on a real 2 MB tmpfs (a full disk as the kernel makes one, not /dev/full);
    needs root (CI runs as root). ``fill()`` writes a file until the kernel says ENOSPC."""
    import errno

    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip() or done.returncode}")

    def fill() -> None:
        with open(mount / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc

    try:
        yield mount, fill
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
