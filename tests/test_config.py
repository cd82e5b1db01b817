import pytest
from conftest import ARCHS, CONFIGS

from stemsplit.config import ConfigError, config_from_dict, config_to_dict, load_config, save_config
from stemsplit.models.lstm import LSTMParams


@pytest.mark.parametrize("arch", ARCHS)
def test_shipped_configs_load_and_round_trip(arch, tmp_path):
    cfg = load_config(CONFIGS / f"{arch}.yaml")
    assert cfg.model.name == arch
    assert config_from_dict(config_to_dict(cfg)) == cfg
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


def test_defaults_without_a_file():
    cfg = load_config(None)
    assert cfg.model.name == "lstm" and isinstance(cfg.model.params, LSTMParams)
    assert cfg.stems == ["vocals", "drums", "bass", "other"]


def test_overrides_apply_and_are_type_checked():
    cfg = load_config(CONFIGS / "lstm.yaml", ["train.lr=3e-4", "model.hidden_size=64", "stems=[vocals]"])
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.model.params.hidden_size == 64
    assert cfg.stems == ["vocals"]
    with pytest.raises(ConfigError, match="train.batch_size: expected an integer"):
        load_config(CONFIGS / "lstm.yaml", ["train.batch_size=big"])


def test_unknown_key_lists_valid_keys(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'learning_rate'; valid keys are: seed, batch_size"):
        load_config(p)


def test_unknown_model_lists_valid_models():
    with pytest.raises(ConfigError, match="model.name: unknown model 'wavenet9'; valid models are: ") as info:
        load_config(None, ["model.name=wavenet9"])
    listed = str(info.value).split("valid models are: ")[1].split(", ")
    assert {"lstm", "mask_cnn", "unet"} <= set(listed)


def test_model_params_are_checked_against_the_chosen_model():
    with pytest.raises(ConfigError, match="unknown key 'base_channels'"):
        load_config(CONFIGS / "lstm.yaml", ["model.base_channels=4"])


@pytest.mark.parametrize("override,match", [
    ("train.schedule=linear", "train.schedule: 'linear' is not one of"),
    ("separate.overlap=1.5", "separate.overlap"),
    ("model.max_bin=5000", "model.max_bin"),
    ("stems=[]", "at least one stem"),
    ("stft.window=hamming", "stft.window: only 'hann' is supported"),
    ("nonsense", "expected section.key=value"),
])
def test_invalid_values_are_refused(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(CONFIGS / "lstm.yaml", [override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
