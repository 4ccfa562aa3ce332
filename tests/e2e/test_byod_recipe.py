"""data/README.md's "Bring your own data" recipe, run as written on a DRIVE-like fake set (tiny sizes)."""

import json
import re
import shlex
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from tests.data_files import drive_set
from tests.tool_loader import load_tool

README = Path(__file__).resolve().parents[2] / "data" / "README.md"
TOOLS = {
    "tools/check_dataset.py": "check_dataset",
    "tools/train.py": "train",
    "tools/eval.py": "eval",
    "tools/infer.py": "infer",
}


def _recipe():
    text = README.read_text().split("## Bring your own data", 1)[1]
    config = re.search(r"```yaml\n# drive.yaml\n(.*?)```", text, re.S).group(1)
    commands = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return yaml.safe_load(config), [shlex.split(line) for line in commands.splitlines() if line.strip()]


def test_the_readme_recipe_trains_evaluates_inside_the_fov_and_infers(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data" / "DRIVE"
    drive_set(root, n=5)
    drive_set(root, n=2, first=1, split="test")
    config, commands = _recipe()
    config["data"].update(crop_size=[32, 32], num_workers=0)  # tiny sizes; everything else as written
    config["train"].update(
        iterations=2, batch_size=2, val_interval=2, checkpoint_interval=2, log_interval=1, device="cpu"
    )
    config["eval"].update(crop_size=[32, 32], stride=[24, 24])
    (tmp_path / "drive.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    assert [argv[:2] for argv in commands] == [["python", tool] for tool in TOOLS]
    for argv in commands:
        code = load_tool(TOOLS[argv[1]]).main(argv[2:])
        out = capsys.readouterr()
        assert code in (0, None), f"{shlex.join(argv)}\n{out.out}\n{out.err}"
        if argv[1] == "tools/check_dataset.py":
            assert "255 -> class 1 'vessel'" in out.out and "-1 -> ignored (outside the ignore mask)" in out.out
            assert "split 'train': 4 image/mask pairs" in out.out and "split 'val': 1 image/mask pairs" in out.out
    val_key = (root / "splits" / "val.txt").read_text().split()[0]
    fov = np.array(Image.open(root / "training" / "mask" / f"{val_key}_training_mask.gif")) > 0
    results = json.loads(next((tmp_path / "work_dirs" / "drive_unet_r18").glob("eval_*.json")).read_text())
    assert int(np.sum(results["confusion"])) == int(fov.sum())  # scored inside the FOV only
    written = sorted(p.name for p in (tmp_path / "outputs" / "drive").rglob("*") if p.is_file())
    assert any(name.startswith("01_test") for name in written) and any(name.startswith("02_test") for name in written)
