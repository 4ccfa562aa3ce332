"""tools/check_dataset.py: lists every problem, answers the label questions, exits non-zero when it cannot train."""
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.data_files import folder_set, write_image, write_mask

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import check_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


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
    assert "split 'val': 2 image/mask pairs" in out and out.rstrip().endswith("CANNOT TRAIN: fix the ERROR lines above.")


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
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "check_dataset.py"), _config(tmp_path, root),
                          "--workers", "0"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "OK: every pair reads" in run.stdout
