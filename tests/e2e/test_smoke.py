"""The walking skeleton: sample data -> train a few steps -> checkpoint -> evaluate -> same numbers;
and the train CLI's handling of its arguments and of bad input."""

import torch

from segkit.checkpoint import model_from_checkpoint
from segkit.config import load_config
from segkit.data import build_dataset, build_eval_loader
from segkit.evaluation.evaluator import evaluate
from segkit.runtime import inference_dtype
from segkit.training.engine import train
from tests.tool_loader import load_tool
from tests.train_helpers import CONFIG


def test_train_checkpoint_evaluate_agree(sample_root, tmp_path):
    cfg = load_config(
        "configs/sample/deeplabv3plus_r18.yaml",
        [
            f"data.root={sample_root}",
            "data.num_workers=0",
            "train.iterations=4",
            "train.batch_size=2",
            "train.val_interval=4",
            "train.checkpoint_interval=4",
            "train.log_interval=2",
        ],
    )
    results = train(cfg, str(tmp_path))
    model, ckpt_cfg, meta = model_from_checkpoint(tmp_path / "last.pth")
    assert meta["class_names"] == list(cfg.data.class_names)
    loader = build_eval_loader(build_dataset(ckpt_cfg.data, ckpt_cfg.data.val_split), 1)
    cpu = torch.device("cpu")
    again = evaluate(model, loader, ckpt_cfg, cpu, inference_dtype(ckpt_cfg, cpu))  # as tools/eval.py does
    assert again["mIoU"] == results["mIoU"]


def _train_cli(*args):
    """tools/train.py's main() in this process (a subprocess would spend seconds importing torch)."""
    try:
        return load_tool("train").main([str(CONFIG), *map(str, args)])
    except SystemExit as exc:  # argparse errors
        return exc.code


def test_train_cli_reports_bad_input_in_one_line(sample_root, tmp_path, capsys):
    assert _train_cli("train.lrr=0.1", "--work-dir", tmp_path) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'train.lrr'" in err and len(err.strip().splitlines()) == 1
    assert _train_cli(f"data.root={tmp_path / 'missing'}", "--work-dir", tmp_path) == 2
    assert "data root not found" in capsys.readouterr().err
    assert _train_cli("train.iterations=0", "--work-dir", tmp_path) == 2
    assert "train.iterations must be >= 1" in capsys.readouterr().err
    assert _train_cli("--resume", "--init-from", "x.pth", "--work-dir", tmp_path) == 2
    assert "exclude each other" in capsys.readouterr().err
    # the engine locks the work dir and opens train.log before it finds the checkpoint missing
    assert _train_cli("--init-from", tmp_path / "nothing.pth", f"data.root={sample_root}", "--work-dir", tmp_path) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_train_cli_takes_overrides_after_options(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(load_tool("train").module, "train", lambda *args: calls.append(args))
    monkeypatch.chdir(tmp_path)  # the second form's default work dir is repo-relative; nothing lands in the repo
    work_dir = str(tmp_path / "w")
    for argv, resume, work in (
        (["--resume", "train.lr=0.5", "--work-dir", work_dir], "auto", work_dir),
        (["train.lr=0.5", "--resume", "x/last.pth"], "x/last.pth", None),
    ):
        assert _train_cli(*argv) == 0
        cfg, work_dir, got_resume, init_from = calls.pop()
        assert cfg.train.lr == 0.5 and got_resume == resume and work_dir == work and init_from is None


def test_train_help_lists_resume_none(capsys):
    assert _train_cli("--help") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--resume [auto|none|PATH]" in out and "'none' starts fresh" in out


def test_sample_set_patterns_always_show_and_colour_does_not_tell_the_class():
    """The demo data: every shape's two colours differ in brightness (a pattern never vanishes, as it
    could when both colours were drawn alike), and each class comes in many colours."""
    import numpy as np

    from segkit.data.sample import CLASS_NAMES, make_sample

    image, mask = make_sample(7)
    assert np.array_equal(make_sample(7)[0], image) and np.array_equal(make_sample(7)[1], mask)  # deterministic
    spread, colours = {c: [] for c in range(1, len(CLASS_NAMES))}, {c: [] for c in range(1, len(CLASS_NAMES))}
    for seed in range(40):
        image, mask = make_sample(seed)
        value = image.astype(np.float32).max(axis=2)  # HSV value: light and dark whatever the hue
        for c in np.unique(mask):
            inside = mask == c
            if c and inside.sum() >= 60:
                spread[c].append(np.percentile(value[inside], 90) - np.percentile(value[inside], 10))
                colours[c].append(image[inside].mean(axis=0))
    for c in spread:
        assert len(spread[c]) >= 5, CLASS_NAMES[c]
        assert min(spread[c]) > 40, CLASS_NAMES[c]  # light and dark parts in every shape
        assert np.std(np.array(colours[c]), axis=0).min() > 15, CLASS_NAMES[c]  # no class has a colour of its own
