"""The accelerate config files the README points to are ones accelerate reads as intended.
(FSDP itself cannot run here: accelerate turns several CPU processes into DDP over gloo and
ignores FSDP settings, see the README.)"""

from pathlib import Path

import pytest

pytest.importorskip("accelerate")

CONFIGS = Path(__file__).parents[2] / "docs" / "accelerate"


@pytest.mark.parametrize(("name", "kind"), [("ddp.yaml", "MULTI_GPU"), ("fsdp.yaml", "FSDP")])
def test_a_shipped_config_loads_as_its_distributed_type(name: str, kind: str) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / name))
    assert config.distributed_type == kind
    assert config.mixed_precision == "bf16"


def test_the_fsdp_config_shards_fully_with_fsdp2_and_saves_full_weights() -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    fsdp = load_config_from_file(str(CONFIGS / "fsdp.yaml")).fsdp_config
    assert fsdp["fsdp_version"] == 2
    assert fsdp["fsdp_reshard_after_forward"] is True
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
