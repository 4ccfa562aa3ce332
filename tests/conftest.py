"""Shared fixtures. Everything runs on the CPU; real data comes from ../shared/data when present."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SEGKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))

torch.set_num_threads(min(2, torch.get_num_threads()))


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
