import json
from pathlib import Path

import pytest

from tests.trainer.conftest import SKY_ANSWER, SKY_PROMPT, quiet_config, read_metrics
from trainer import sft
from trainer.snapshot import Message

torch = pytest.importorskip("torch")


def reproductions(model_dir: Path, samples: int = 16) -> int:
    """How many of `samples` sampled answers to the sky prompt equal the demonstration."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.models import sample
    from trainer.text import ChatFormat

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    chat = ChatFormat(tokenizer)
    torch.manual_seed(0)
    _, responses = sample(
        model,
        [chat.prompt([Message("user", SKY_PROMPT)])] * samples,
        tokenizer,
        max_new_tokens=10,
        temperature=1.0,
        top_p=1.0,
    )
    texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
    return sum(text.strip() == SKY_ANSWER for text in texts)


def test_training_loss_falls(sft_policy: Path) -> None:
    losses = [m["loss"] for m in read_metrics(sft_policy.parent) if "loss" in m]
    assert losses[-1] < 0.5 * losses[0]


def test_validation_loss_is_logged_each_epoch(sft_policy: Path) -> None:
    epochs = [m["epoch"] for m in read_metrics(sft_policy.parent) if "validation_loss" in m]
    assert epochs == list(range(1, 9))


def test_the_model_reproduces_a_trained_demonstration_more_often(
    tiny_model: Path, sft_policy: Path
) -> None:
    before, after = reproductions(tiny_model), reproductions(sft_policy)
    assert after >= 8 > before


def test_the_run_reports_peak_memory(sft_policy: Path) -> None:
    assert read_metrics(sft_policy.parent)[-1]["peak_memory_mb"] > 0


def test_with_a_reward_model_the_best_epoch_by_reward_is_marked(
    tmp_path: Path, snapshot: Path, tiny_model: Path, reward_model: Path
) -> None:
    config = quiet_config(
        "sft",
        batch_size=8,
        epochs=2,
        learning_rate=3e-3,
        dropout=0.0,
        reward_model=str(reward_model),
        max_new_tokens=8,
    )
    sft.train(config, snapshot, tiny_model, tmp_path)
    rewards = {
        m["epoch"]: m["validation_reward"]
        for m in read_metrics(tmp_path)
        if "validation_reward" in m
    }
    best = json.loads((tmp_path / "best.json").read_text())
    assert set(rewards) == {1, 2}
    assert best["validation_reward"] == max(rewards.values())
    assert Path(best["model"]) == tmp_path / "epochs" / f"epoch-{best['epoch']}"
    assert (Path(best["model"]) / "config.json").exists()


def test_dropout_override_reaches_the_saved_model(
    tmp_path: Path, snapshot: Path, tiny_model: Path
) -> None:
    from transformers import AutoConfig

    sft.train(
        quiet_config("sft", batch_size=8, max_steps=1, dropout=0.2), snapshot, tiny_model, tmp_path
    )
    assert AutoConfig.from_pretrained(tmp_path / "model").resid_pdrop == 0.2


def test_a_llama_style_model_with_lora_trains_and_loads_back(
    tmp_path: Path, snapshot: Path, tiny_llama: Path
) -> None:
    from transformers import AutoModelForCausalLM

    out = sft.train(
        quiet_config("sft", batch_size=8, max_steps=2, lora_rank=4, learning_rate=1e-3),
        snapshot,
        tiny_llama,
        tmp_path,
    )
    assert AutoModelForCausalLM.from_pretrained(out).config.model_type == "llama"


def test_gradient_checkpointing_leaves_the_losses_unchanged(
    tmp_path: Path, snapshot: Path, tiny_model: Path
) -> None:
    losses = {}
    for checkpointing in (False, True):
        out = tmp_path / str(checkpointing)
        config = quiet_config(
            "sft",
            batch_size=8,
            max_steps=2,
            dropout=0.0,
            log_every=1,
            gradient_checkpointing=checkpointing,
            save_every=0,
        )
        sft.train(config, snapshot, tiny_model, out)
        losses[checkpointing] = [m["loss"] for m in read_metrics(out) if "loss" in m]
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)
