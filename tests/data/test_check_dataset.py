"""tools/check_dataset.py: lists every problem, answers the label questions, exits non-zero when it cannot train."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.data_files import folder_set, write_image, write_mask

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import check_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path, root, **data) -> str:
    lines = ["data:", "  format: folder", f"  root: {root}", f"  num_classes: {data.pop('num_classes', 3)}"]
    lines += [f"  {k}: {v}" for k, v in data.items()]
    path = tmp_path / "check.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_a_clean_data_set_passes_with_frequencies_and_weights(sample_root, capsys):
    config = _config(Path(sample_root).parent, sample_root, num_classes=6)
    assert check_dataset.main([config, "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "split 'train': 16 image/mask pairs" in out and "split 'val': 6 image/mask pairs" in out
    assert "value 0 (background in most data sets) is class 0 'class_0': it is learned" in out
    assert "suggested weight" in out and out.rstrip().endswith("every label value is a class or ignored.")


def test_every_problem_is_listed_and_the_exit_code_says_it_cannot_train(tmp_path, capsys):
    root = folder_set(tmp_path / "data", splits=(("train", 6), ("val", 2)), values=(0, 1, 2))
    (root / "masks" / "train" / "train_0.png").unlink()  # an image with no mask
    write_mask(root / "masks" / "train" / "orphan.png", np.zeros((24, 32)))  # a mask with no image
    (root / "images" / "train" / "train_1.png").write_bytes(b"garbage")  # unreadable
    write_mask(root / "masks" / "train" / "train_2.png", np.zeros((10, 10)))  # size mismatch
    write_mask(root / "masks" / "train" / "train_3.png", np.full((24, 32), 9))  # a value that is no class
    assert check_dataset.main([_config(tmp_path, root), "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "split 'train': 5 image/mask pairs" in out
    assert "ERROR: 1 image(s)" in out and "train_0" in out
    assert "warning: 1 mask(s) have no image" in out and "orphan" in out
    assert "ERROR: cannot decode image" in out and "train_1.png" in out
    assert "ERROR: mask" in out and "train_2.png is 10x10" in out
    assert "mask value(s) [9] are neither a class" in out and "9 -> INVALID" in out
    assert "split 'val': 2 image/mask pairs" in out and out.rstrip().endswith(
        "CANNOT TRAIN: fix the ERROR lines above."
    )


def test_binary_masks_saved_as_0_255_are_explained(tmp_path, capsys):
    root = folder_set(tmp_path / "data", splits=(("train", 2), ("val", 1)), values=(0, 255))
    assert check_dataset.main([_config(tmp_path, root, num_classes=2), "--workers", "0"]) == 1
    out = capsys.readouterr().out
    assert "255 -> ignored (ignore_index=255)" in out
    assert "map it with data.label_map={255: 1}" in out  # "why are my labels 255?"
    assert "class(es) 1 'class_1' never appear in split 'train': the model cannot learn them" in out
    fixed = _config(tmp_path, root, num_classes=2, label_map="{255: 1}")
    assert check_dataset.main([fixed, "--workers", "0"]) == 0


def test_classes_numbered_from_one_and_a_bad_config(tmp_path, capsys):
    root = folder_set(tmp_path / "data", splits=(("train", 2), ("val", 1)), values=(1, 2, 3))
    assert check_dataset.main([_config(tmp_path, root), "--workers", "0", "--splits", "train"]) == 1
    assert "set data.reduce_zero_label=true" in capsys.readouterr().out
    assert check_dataset.main([str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_the_cli_runs_from_a_checkout(tmp_path):
    root = folder_set(tmp_path / "data", splits=(("train", 2), ("val", 1)))
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_dataset.py"), _config(tmp_path, root), "--workers", "0"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "OK: every pair reads" in run.stdout


def test_sizes_mean_std_and_a_hint_that_reads(tmp_path, capsys):
    root = tmp_path / "data"
    for i, (h, w) in enumerate([(8, 10), (12, 16), (20, 30)]):
        write_image(root / "images" / "train" / f"{i}.png", np.full((h, w, 3), (51, 102, 255), np.uint8))
        write_mask(root / "masks" / "train" / f"{i}.png", np.full((h, w), i % 3 if i < 2 else 7))
    assert check_dataset.main([_config(tmp_path, root), "--workers", "0", "--splits", "train"]) == 1
    out = capsys.readouterr().out
    assert "image sizes (W x H): min 10x8, median 16x12, max 30x20" in out
    assert "data.mean=[0.2, 0.4, 1.0] data.std=[0.0, 0.0, 0.0]" in out
    assert "Fix: map each value with data.label_map, e.g. {7: 255}" in out and "Fix: or" not in out


def test_make_split_writes_lists_once_and_the_check_uses_them(tmp_path, capsys):
    root = folder_set(tmp_path / "data", splits=(("all", 10),))
    config = _config(tmp_path, root, image_dir="images/all", mask_dir="masks/all", split_file="splits/{split}.txt")
    assert check_dataset.main([config, "--workers", "0", "--make-split", "0.2"]) == 0
    out = capsys.readouterr().out
    val = (root / "splits" / "val.txt").read_text().split()
    train = (root / "splits" / "train.txt").read_text().split()
    assert len(val) == 2 and len(train) == 8 and not set(val) & set(train)
    assert "split 'train': 8 image/mask pairs" in out and "split 'val': 2 image/mask pairs" in out
    assert check_dataset.main([config, "--make-split", "0.2"]) == 2  # never overwrites a list
    assert "exists already" in capsys.readouterr().err
    assert (root / "splits" / "val.txt").read_text().split() == val


def test_make_split_on_per_split_folders_checks_and_prints_the_settings_that_read_the_lists(tmp_path, capsys):
    # default image_dir 'images/{split}', only images/train: the check after writing must read the lists
    # from images/train for both splits, not look for images/val
    root = folder_set(tmp_path / "data", splits=(("train", 10),))
    config = _config(tmp_path, root)
    assert check_dataset.main([config, "--workers", "0", "--make-split", "0.2"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "split 'train': 8 image/mask pairs" in out and "split 'val': 2 image/mask pairs" in out
    settings = ["data.split_file=splits/{split}.txt", "data.image_dir=images/train", "data.mask_dir=masks/train"]
    assert f"train and check with these overrides (both splits then list from one folder): {' '.join(settings)}" in out
    assert check_dataset.main([config, "--workers", "0", *settings]) == 0  # the line as a user pastes it
    assert "split 'val': 2 image/mask pairs" in capsys.readouterr().out


def test_make_split_refuses_a_joined_training_split(tmp_path, capsys):
    root = folder_set(tmp_path / "data", splits=(("a", 3), ("b", 3)))
    assert check_dataset.main([_config(tmp_path, root, train_split="a+b"), "--make-split", "0.2"]) == 2
    err = capsys.readouterr().err
    assert "data.train_split='a+b' joins splits" in err and "data.train_split=a" in err
    assert len(err.strip().splitlines()) == 1 and not (root / "splits").exists()


def test_libpng_warnings_become_a_warning_naming_the_file(tmp_path):
    import struct
    import zlib

    root = folder_set(tmp_path / "data", splits=(("train", 2), ("val", 1)))
    png = (root / "images" / "train" / "train_1.png").read_bytes()
    body = b"x\x00\x00" + zlib.compress(b"not a profile")
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    (root / "images" / "train" / "train_1.png").write_bytes(png[:33] + chunk + png[33:])  # after IHDR
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_dataset.py"), _config(tmp_path, root), "--workers", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "libpng" not in run.stderr
    assert "warning: train_1.png / train_1.png: the decoder says 'libpng warning: iCCP" in run.stdout


def test_check_prints_the_class_weights_training_uses(sample_root, tmp_path, capsys):
    from segkit.config import load_config
    from segkit.training.engine import train

    config = _config(tmp_path, sample_root, num_classes=6)
    assert check_dataset.main([config, "--workers", "0", "--splits", "train"]) == 0
    printed = [
        float(line.rsplit("weight ", 1)[1])
        for line in capsys.readouterr().out.splitlines()
        if "images   weight" in line
    ]
    cfg = load_config(
        str(ROOT / "configs/sample/fcn_r18.yaml"),
        [
            f"data.root={sample_root}",
            "loss.terms=[{name: ce, class_weights: auto}]",
            "train.iterations=1",
            "train.batch_size=2",
            "data.num_workers=0",
            "train.device=cpu",
            "data.crop_size=[32,32]",
            "train.val_interval=1",
            "train.checkpoint_interval=1",
            "train.log_interval=1",
        ],
    )
    train(cfg, str(tmp_path / "work"))
    used = capsys.readouterr().out.split("class weights (median frequency): ")[1].splitlines()[0]
    assert len(printed) == 6 and [float(w.rsplit(" ", 1)[1]) for w in used.split(", ")] == pytest.approx(
        printed, abs=1e-3
    )
    assert (tmp_path / "work" / "class_weights.json").is_file()  # a resume or a rerun reads them from there
