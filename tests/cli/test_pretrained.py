"""`segkit pretrained`: torchvision's segmenters as segkit checkpoints. No network: each torchvision model is
built with random weights (BatchNorm statistics included) and saved as the file --weights-file reads; the
converted checkpoint's logits in segkit's Predictor must equal torchvision's on the same image."""

import hashlib
import shutil

import numpy as np
import pytest
import torch
from torchvision.models import segmentation

from segkit.checkpoint import load_checkpoint, model_from_checkpoint
from segkit.cli import run
from segkit.cli.pretrained import SEGMENTERS, check_hash, hub_file, weights_of
from segkit.data import normalize
from segkit.errors import CheckpointError
from segkit.inference.predictor import Predictor
from tests.tool_loader import load_tool
from tests.tool_matrix_data import voc

H, W = 72, 88  # small and not square: the r101 models run at full width on 2 cores


def random_torchvision(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = getattr(segmentation, name.split("/")[1])(
        weights=None, weights_backbone=None, aux_loss=True, num_classes=21
    ).eval()
    # fresh BatchNorm is the identity: random statistics make the check bite. Scales below 1 keep the
    # logits near real ones' size (at 0.5..1.5 they reach 100s, where fp32's summation order alone is 1e-3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.0)
                m.bias.uniform_(-0.2, 0.2)
    return model


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)


def test_no_argument_lists_the_segmenters_and_backbones(capsys):
    assert run("pretrained", []) == 0
    out = capsys.readouterr().out
    for name, (_, config) in SEGMENTERS.items():
        assert name in out and config in out
    assert "COCO_WITH_VOC_LABELS_V1" in out and "torchvision/resnet101" in out and "IMAGENET1K_V1" in out


# fcn_resnet50 in every run; the others (20-35 s each on 2 cores) with the slow tests, which CI runs
PARITY = [n if n == "torchvision/fcn_resnet50" else pytest.param(n, marks=pytest.mark.slow) for n in SEGMENTERS]


@pytest.mark.parametrize("name", PARITY)
def test_converted_checkpoint_gives_torchvisions_logits(name, image, tmp_path, capsys):
    tv = random_torchvision(name)
    weights_file = tmp_path / f"random_{name.split('/')[1]}.pth"  # not torchvision's name: no hash to check
    torch.save(tv.state_dict(), weights_file)
    out = tmp_path / "converted.pth"
    assert run("pretrained", [name, "--weights-file", str(weights_file), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out

    ckpt = load_checkpoint(out)
    meta, cfg = ckpt["meta"], ckpt["config"]
    assert meta["config_name"] == SEGMENTERS[name][1] and cfg["name"] == SEGMENTERS[name][1].replace("/", "_")
    assert meta["class_names"][15] == "person" and len(meta["class_names"]) == 21
    assert meta["palette"][1] == [128, 0, 0] and meta["palette"][15] == [192, 128, 128]  # VOC's colour map
    assert meta["mean"] == [0.485, 0.456, 0.406] and meta["std"] == [0.229, 0.224, 0.225]
    assert weights_of(name).url in meta["source"] and "license" in meta["license"]
    assert cfg["model"]["aux_head"] and cfg["model"]["backbone"]["output_stride"] == 8
    # the aux head is kept, tensor for tensor, for fine-tuning
    aux = {k[len("aux_classifier.") :]: v for k, v in tv.state_dict().items() if k.startswith("aux_classifier.")}
    assert aux and all(torch.equal(ckpt["model"][f"aux_head.head.{k}"], v) for k, v in aux.items())

    model, config, meta = model_from_checkpoint(out)
    config.eval.amp = "none"  # fp32: the comparison is of the weights, not of bf16 rounding
    predictor = Predictor(model, config, meta, "cpu")
    ours = predictor.logits([image])
    x = normalize(torch.from_numpy(image).permute(2, 0, 1)[None], meta["mean"], meta["std"])
    with torch.no_grad():
        theirs = tv(x)["out"]
    assert ours.dtype == torch.float32 and ours.shape == theirs.shape == (1, 21, H, W)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    assert theirs.std() > 0.02  # logits that vary: an all-zero pair would pass trivially


def test_a_file_named_with_its_hash_is_checked_as_torch_hub_does(tmp_path, capsys):
    payload = b"not weights, but checked before it is read"
    digest = hashlib.sha256(payload).hexdigest()
    good = tmp_path / f"tiny-{digest[:8]}.pth"
    bad = tmp_path / f"tiny-{'0' if digest[0] != '0' else '1'}{digest[1:8]}.pth"
    for path in (good, bad):
        path.write_bytes(payload)
    check_hash(good)
    with pytest.raises(CheckpointError, match=f"SHA-256 {bad.name[5:13]}"):
        check_hash(bad)
    name, out = "torchvision/fcn_resnet50", str(tmp_path / "x.pth")
    assert run("pretrained", [name, "--weights-file", str(bad), "--out", out]) == 2
    assert "SHA-256" in capsys.readouterr().err
    assert run("pretrained", [name, "--weights-file", str(good), "--out", out]) == 2  # the hash fits: read next
    err = capsys.readouterr().err
    assert "SHA-256" not in err and "cannot be read as a PyTorch state dict" in err


def test_offline_is_one_error_line_naming_the_url_and_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in ("https_proxy", "HTTPS_PROXY"):  # a proxy that refuses: offline, even where there is a network
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    name = "torchvision/deeplabv3_resnet50"
    assert run("pretrained", [name, "--out", str(tmp_path / "x.pth")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    url = weights_of(name).url
    assert len(err) == 1 and err[0].startswith("error: cannot download " + url)
    assert str(hub_file(url)) in err[0] and "--weights-file deeplabv3_resnet50_coco-" in err[0]
    assert not (tmp_path / "x.pth").exists()


@pytest.mark.slow
def test_checkpoint_works_in_infer_eval_studio_and_init_from(image, tmp_path, capsys):
    """The converted deeplabv3_resnet50 (random weights) in the other commands, on a VOC-layout fixture."""
    name = "torchvision/deeplabv3_resnet50"
    tv_file = tmp_path / "weights.pth"
    torch.save(random_torchvision(name).state_dict(), tv_file)
    digest = hashlib.sha256(tv_file.read_bytes()).hexdigest()
    named = tmp_path / f"deeplabv3_resnet50_coco-{digest[:8]}.pth"  # torchvision's form: the hash is checked
    shutil.move(tv_file, named)
    ckpt = tmp_path / "deeplab_voc.pth"
    assert run("pretrained", [name, "--weights-file", str(named), "--out", str(ckpt)]) == 0

    root = tmp_path / "VOC2012"
    voc(root, tmp_path)
    infer_out = tmp_path / "infer"
    image_path = root / "JPEGImages" / "2007_000063.jpg"
    assert load_tool("infer").main([str(image_path), "--checkpoint", str(ckpt), "--out", str(infer_out)]) == 0
    assert (infer_out / "2007_000063_mask.png").is_file()

    results = tmp_path / "eval.json"
    assert load_tool("eval").main([str(ckpt), f"data.root={root}", "data.num_workers=0", "--out", str(results)]) == 0
    assert '"mIoU"' in results.read_text()

    pytest.importorskip("fastapi", reason="the studio needs fastapi: pip install 'segkit[studio]'")
    from segkit.studio import Studio
    from tests.studio.test_studio import client_for  # the token and the studio's host, as its page asks

    studio = Studio(Predictor.from_checkpoint(ckpt, device="cpu"), [image_path], tmp_path / "masks", checkpoint=ckpt)
    client = client_for(studio)
    assert client.get("/").status_code == 200
    assert client.get("/api/meta").json()["class_names"][15] == "person"

    capsys.readouterr()
    names = [f"c{i}" for i in range(16)]  # a new class count (the fixture's masks hold 0 and 15)
    code = load_tool("train").main(
        [
            "voc/deeplabv3_r50_os8",
            "--init-from",
            str(ckpt),
            "--work-dir",
            str(tmp_path / "work"),
            f"data.root={root}",
            "data.num_classes=16",
            f"data.class_names=[{','.join(names)}]",
            "model.backbone.pretrained=null",
            "data.num_workers=0",
            "data.crop_size=[32,32]",
            "data.base_size=40",
            "train.batch_size=2",
            "train.iterations=2",
            "train.val_interval=2",
            "train.log_interval=1",
            "train.device=cpu",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    skipped = [line.strip() for line in out.splitlines() if line.strip().startswith("skipped ")]
    # everything but the two classifiers' last convs (weight and bias) came from the checkpoint
    assert sorted(s.split(":")[0] for s in skipped) == [
        "skipped aux_head.head.4.bias",
        "skipped aux_head.head.4.weight",
        "skipped decoder.head.4.bias",
        "skipped decoder.head.4.weight",
    ]
    assert (tmp_path / "work" / "last.pth").is_file()
