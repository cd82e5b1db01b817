import math

import pytest
import torch

from stemsplit.errors import ConfigError, DeviceError, StemsplitError
from stemsplit.settings import EngineSettings, pick_device


@pytest.mark.parametrize("kwargs, flag", [
    ({"segment_seconds": math.inf}, "--segment inf: must be a finite number"),
    ({"segment_seconds": math.nan}, "--segment nan: must be a finite number"),
    ({"segment_seconds": 0.0}, "--segment 0: must be > 0"),
    ({"segment_seconds": -1.0}, "--segment -1: must be > 0"),
    ({"segment_seconds": 1e9}, "at most 3600"),
    ({"overlap": 1.0}, "--overlap 1: must be a fraction in [0, 1)"),
    ({"overlap": math.nan}, "--overlap nan: must be a finite number"),
    ({"shifts": -1}, "--shifts -1"),
    ({"wiener_iterations": -2}, "--wiener-iterations -2"),
    ({"device": "tpu"}, "--device 'tpu': not a device"),
    ({"device": "cuda:x"}, "--device 'cuda:x': not a device"),
])
def test_bad_values_name_the_flag(kwargs, flag):
    with pytest.raises(StemsplitError) as info:
        EngineSettings(**kwargs).checked()
    assert flag in str(info.value)
    assert "\n" not in str(info.value)


def test_good_values_pass_and_the_cache_key_ignores_the_device():
    s = EngineSettings(segment_seconds=4.0, overlap=0.0, shifts=2, wiener_iterations=1, device="cuda:1")
    assert s.checked() is s
    assert s.cache_fields() == {"segment_seconds": 4.0, "overlap": 0.0, "shifts": 2, "wiener_iterations": 1}


def test_pick_device_auto_follows_what_is_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("auto", local_rank=3) == torch.device("cuda", 1)  # rank 3 of 2 GPUs
    assert pick_device("cuda") == torch.device("cuda", 0)
    with pytest.raises(DeviceError, match="only 2 GPU"):
        pick_device("cuda:5")


def test_unavailable_devices_are_one_line_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="no CUDA GPU.*use --device cpu"):
        pick_device("cuda")
    with pytest.raises(DeviceError, match="MPS is not available"):
        pick_device("mps")
    assert issubclass(ConfigError, StemsplitError) and issubclass(DeviceError, StemsplitError)
