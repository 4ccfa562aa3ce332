"""train.compile: true/false as given; auto compiles only where the run is long enough to repay it."""

import pytest
import torch

from segkit.config import ConfigError, load_config
from segkit.training.acceleration import COMPILE_MIN_ITERATIONS, use_compile


def test_compile_auto_follows_device_and_run_length():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    floor = COMPILE_MIN_ITERATIONS["cuda"]
    assert use_compile(True, 10, cpu)[0] is True and use_compile(False, 10**6, cuda)[0] is False
    assert use_compile("auto", 10**6, cpu)[0] is False  # not shown to win on a CPU
    assert use_compile("auto", floor - 1, cuda)[0] is False
    compiled, why = use_compile("auto", floor, cuda)
    assert compiled and "repay" in why


def test_compile_setting_is_read_from_the_config_and_checked():
    assert load_config(None, ["data.num_classes=3", "train.compile=auto"]).train.compile == "auto"
    assert load_config(None, ["data.num_classes=3", "train.compile=true"]).train.compile is True
    with pytest.raises(ConfigError, match="train.compile='fast': use true, false or auto"):
        use_compile("fast", 10, torch.device("cpu"))
