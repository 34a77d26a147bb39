"""--device / --dtype parsing: every place that takes them goes through agentrt.engine.device."""

import pytest
import torch

from agentrt.engine.device import Placement, model_device, resolve_device, resolve_dtype
from agentrt.errors import ConfigError


def test_auto_and_cpu_resolve_to_devices_that_exist_here() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_says_so_in_one_line() -> None:
    with pytest.raises(ConfigError, match="no CUDA device here; use --device cpu"):
        resolve_device("cuda:0")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "tpu", ""])
def test_unknown_devices_and_dtypes_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="not understood|no CUDA device"):
        resolve_device(bad)
    with pytest.raises(ConfigError, match="not understood"):
        resolve_dtype(bad or "float64")


def test_placement_record_names_device_dtype_and_accelerator() -> None:
    record = Placement.parse("cpu", "bfloat16").record()
    assert record["device"] == "cpu" and record["dtype"] == "bfloat16"
    assert record["accelerator"] and record["torch"] == torch.__version__


def test_model_device_follows_the_model() -> None:
    layer = torch.nn.Linear(2, 2)
    assert model_device(layer) == torch.device("cpu")
    assert model_device(torch.nn.Identity()) == torch.device("cpu")
