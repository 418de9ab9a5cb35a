from pathlib import Path

import pytest

from tests.trainer.conftest import quiet_config

torch = pytest.importorskip("torch")


def test_a_bf16_checkpoint_loads_with_float32_weights_for_training(
    tmp_path: Path, tiny_model: Path
) -> None:
    from transformers import AutoModelForCausalLM

    from trainer.models import load_policy, load_scalar_model, load_tokenizer

    AutoModelForCausalLM.from_pretrained(tiny_model).to(torch.bfloat16).save_pretrained(tmp_path)
    tokenizer = load_tokenizer(tiny_model)
    config = quiet_config("sft")
    policy = load_policy(tmp_path, config, tokenizer)
    reference = load_policy(tmp_path, config, tokenizer, trainable=False)
    scalar = load_scalar_model(tmp_path, config, tokenizer)
    for model in (policy, reference, scalar):
        assert {p.dtype for p in model.parameters()} == {torch.float32}
