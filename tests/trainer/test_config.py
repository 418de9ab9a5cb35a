from pathlib import Path

import pytest
import yaml

from trainer.config import ConfigError, PpoConfig, SftConfig, load_config


def test_defaults_follow_the_paper() -> None:
    config = load_config("sft")
    assert isinstance(config, SftConfig)
    assert (config.epochs, config.dropout) == (16, 0.2)


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    file = tmp_path / "ppo.yaml"
    file.write_text("kl_coef: 0.1\nppo_epochs: 2\n")
    config = load_config("ppo", file, ["kl_coef=0.5", "adaptive_kl=true", "learning_rate=1e-6"])
    assert isinstance(config, PpoConfig)
    assert (config.kl_coef, config.ppo_epochs, config.adaptive_kl) == (0.5, 2, True)
    assert config.learning_rate == 1e-6


def test_an_unknown_option_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown rm option.*: epochz; known:.*epochs"):
        load_config("rm", overrides=["epochz=3"])


def test_a_value_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(ConfigError, match="option epochs: 'many'"):
        load_config("sft", overrides=["epochs=many"])


def test_an_option_outside_its_choices_is_refused() -> None:
    with pytest.raises(ConfigError, match="option mode"):
        load_config("rm", overrides=["mode=triplets"])


def test_an_override_needs_an_equals_sign() -> None:
    with pytest.raises(ConfigError, match="key=value"):
        load_config("rm", overrides=["epochs"])


def test_a_run_saves_its_resolved_config_and_each_checkpoint_too(
    tmp_path: Path, snapshot: Path, tiny_model: Path
) -> None:
    from tests.trainer.conftest import quiet_config
    from trainer import rm

    rm.train(
        quiet_config("rm", batch_size=16, max_steps=2, save_every=1), snapshot, tiny_model, tmp_path
    )
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["stage_config"]["batch_size"] == 16
    assert saved["paths"]["model"] == str(tiny_model)
    checkpoint = sorted((tmp_path / "checkpoints").glob("step-*"))[-1]
    assert yaml.safe_load((checkpoint / "config.yaml").read_text()) == saved
