"""The CUDA path (AMP, grad scaler, channels-last, cudnn.benchmark, pinned memory, compile), run
where a GPU is present and skipped cleanly elsewhere; the CPU tests cover the same loop."""

import pytest
import torch

from segkit.checkpoint import load_checkpoint, model_from_checkpoint
from segkit.runtime import amp_dtype
from segkit.training.engine import train
from tests.train_helpers import tiny_config

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def test_amp_choice_without_a_gpu(monkeypatch):
    import segkit.runtime as runtime

    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert amp_dtype("auto", cpu) is torch.bfloat16  # CPU with AVX512-BF16/AMX: the fast path
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert amp_dtype("auto", cpu) is None  # emulated bf16 would be slower: fp32
    assert amp_dtype("bf16", cpu) is torch.bfloat16
    assert amp_dtype("none", cpu) is None


@cuda
@pytest.mark.parametrize("amp", ["auto", "fp16"])
def test_cuda_training_with_amp(sample_root, tmp_path, amp):
    cfg = tiny_config(
        sample_root,
        4,
        "train.device=cuda",
        f"train.amp={amp}",
        "data.num_workers=2",
        "train.clip_grad=1.0",
        "train.accumulate=2",
    )
    results = train(cfg, str(tmp_path))
    assert results["mIoU"] == results["mIoU"]  # not NaN
    ckpt = load_checkpoint(tmp_path / "last.pth")
    if amp == "fp16" or not torch.cuda.is_bf16_supported():
        assert ckpt["scaler"]["scale"] > 0  # the grad scaler ran and its state is saved
    model, _, _ = model_from_checkpoint(tmp_path / "last.pth")  # loads on the CPU
    assert next(model.parameters()).device.type == "cpu"
    assert amp_dtype("auto", torch.device("cuda")) in (torch.bfloat16, torch.float16)


@cuda
def test_cuda_compile(sample_root, tmp_path):
    pytest.importorskip("triton")
    results = train(tiny_config(sample_root, 2, "train.device=cuda", "train.compile=true"), str(tmp_path))
    assert results["mIoU"] == results["mIoU"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is absent")
def test_asking_for_cuda_without_it_is_a_clear_error():
    from segkit.config import ConfigError
    from segkit.runtime import resolve_device

    with pytest.raises(ConfigError, match="train.device=cuda but CUDA is not available") as info:
        resolve_device("cuda")
    assert isinstance(info.value, RuntimeError)  # what callers of resolve_device catch


def test_auto_amp_on_a_gpu_that_only_emulates_bf16_is_fp16(monkeypatch):
    """Regression: is_bf16_supported() counts emulation, so auto picked slow emulated bf16 on pre-Ampere GPUs."""
    asked = []

    def emulates_only(including_emulation=True):
        asked.append(including_emulation)
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", emulates_only)
    assert amp_dtype("auto", torch.device("cuda")) is torch.float16  # and the engine adds the grad scaler
    assert asked == [False]
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert amp_dtype("auto", torch.device("cuda")) is torch.bfloat16
