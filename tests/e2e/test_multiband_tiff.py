"""Acceptance (issue #20): a 4-band 16-bit TIFF data set (tifffile) checks, trains, exports to ONNX with a
4-channel input, and infers with both backends (eager PyTorch and ONNX Runtime)."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from segkit.cli import run
from segkit.config import load_config
from segkit.data import read_image
from segkit.data.check import check_dataset
from segkit.training.engine import train

pytest.importorskip("onnxruntime")


def four_band_copy(sample_root: Path, out: Path) -> Path:
    """The sample set's RGB images as 4-band uint16 TIFFs (x 16: 12 bits used; a 4th 'NIR' band), half
    written band-interleaved and half planar; masks linked."""
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True)
        (out / "masks").mkdir(exist_ok=True)
        (out / "masks" / split).symlink_to(sample_root / "masks" / split)
        for i, path in enumerate(sorted((sample_root / "images" / split).glob("*.png"))):
            rgb = np.array(Image.open(path).convert("RGB")).astype(np.uint16) * 16
            nir = (4095 - rgb.mean(axis=2)).astype(np.uint16)
            bands = np.dstack([rgb, nir])
            if i % 2:
                tifffile.imwrite(
                    out / "images" / split / f"{path.stem}.tif",
                    np.moveaxis(bands, -1, 0),
                    photometric="minisblack",
                    planarconfig="separate",
                )
            else:
                tifffile.imwrite(
                    out / "images" / split / f"{path.stem}.tif", bands, photometric="minisblack", planarconfig="contig"
                )
    return out


@pytest.mark.slow
def test_four_band_tiffs_check_train_export_and_infer_on_both_backends(sample_root, tmp_path, capsys):
    root = four_band_copy(sample_root, tmp_path / "bands4")
    cfg = load_config(
        "sample/fcn_r18",
        [
            f"data.root={root}",
            "data.channels=4",
            "data.mean=[0.5,0.5,0.5,0.5]",
            "data.std=[0.25,0.25,0.25,0.25]",
            "data.num_workers=0",
            "data.crop_size=[64,64]",
            "train.iterations=2",
            "train.batch_size=2",
            "train.val_interval=2",
            "train.checkpoint_interval=2",
            "train.log_interval=1",
            "train.warmup_iters=0",
            "train.device=cpu",
            "train.tensorboard=false",
            "train.progress=log",
        ],
    )
    assert cfg.model.backbone.in_channels == 4

    lines, ok = check_dataset(cfg)
    text = "\n".join(lines)
    assert ok, text
    assert "bands: 4 of uint16" in text and "band 4: min" in text and "needs 12 of 16 bits" in text

    results = train(cfg, str(tmp_path / "work"))
    said = capsys.readouterr()
    assert "photometric augmentation (brightness, contrast, saturation, hue) left out" in said.out + said.err
    assert 0.0 <= results["mIoU"] <= 1.0
    checkpoint = tmp_path / "work" / "last.pth"

    onnx = pytest.importorskip("onnx")
    assert run("export", [str(checkpoint), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    dims = onnx.load(str(tmp_path / "m.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == 4

    masks = {}
    for backend in ("eager", "onnxruntime"):
        out = tmp_path / f"infer_{backend}"
        assert (
            run(
                "infer",
                [
                    str(root / "images" / "val"),
                    "--checkpoint",
                    str(checkpoint),
                    "--out",
                    str(out),
                    "--device",
                    "cpu",
                    "--backend",
                    backend,
                ],
            )
            == 0
        )
        masks[backend] = {p.name: np.array(Image.open(p)) for p in sorted(out.glob("*_mask.png"))}
        assert (out / f"{sorted((root / 'images' / 'val').iterdir())[0].stem}_overlay.png").is_file()
    assert masks["eager"].keys() == masks["onnxruntime"].keys() and len(masks["eager"]) == 6
    for name, eager in masks["eager"].items():
        image = read_image(root / "images" / "val" / name.replace("_mask.png", ".tif"), channels=4)
        assert eager.shape == image.shape[:2]
        assert np.mean(eager == masks["onnxruntime"][name]) > 0.99
