"""Interrupt after N steps, resume, and get what an uninterrupted run gets."""

from pathlib import Path

import pytest

from tests.trainer.conftest import PPO_OPTIONS, quiet_config, read_metrics
from trainer import ppo, rm, sft

torch = pytest.importorskip("torch")

TIMINGS = {
    "tokens_per_s",
    "rankings_per_s",
    "samples_per_s",
    "generation_share",
    "seconds",
    "peak_memory_mb",
    "processes",
}


def comparable(out: Path) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in TIMINGS} for m in read_metrics(out)]


def weights(directory: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(directory / "model.safetensors")


def interrupted_then_resumed(train, config, snapshot: Path, model: Path, out: Path) -> None:
    train(config(stop_after_steps=3), snapshot, model, out)
    assert not (out / "model").exists()
    train(config(), snapshot, model, out, resume=True)


def assert_same_run(first: Path, second: Path) -> None:
    expected, got = comparable(first), comparable(second)
    assert len(got) == len(expected)
    for a, b in zip(expected, got, strict=True):
        assert b == pytest.approx(a)
    a, b = weights(first / "model"), weights(second / "model")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sft_resumed_equals_uninterrupted(tmp_path: Path, snapshot: Path, tiny_model: Path):
    def config(**extra):  # dropout on, so the restored RNG matters
        return quiet_config(
            "sft",
            batch_size=8,
            max_steps=6,
            learning_rate=3e-3,
            dropout=0.1,
            log_every=1,
            save_every=0,
            **extra,
        )

    sft.train(config(), snapshot, tiny_model, tmp_path / "straight")
    interrupted_then_resumed(sft.train, config, snapshot, tiny_model, tmp_path / "resumed")
    assert_same_run(tmp_path / "straight", tmp_path / "resumed")


def test_rm_resumed_equals_uninterrupted(tmp_path: Path, snapshot: Path, tiny_model: Path):
    def config(**extra):
        return quiet_config(
            "rm",
            batch_size=16,
            epochs=2,
            learning_rate=1e-3,
            dropout=0.1,
            log_every=1,
            save_every=0,
            **extra,
        )

    rm.train(config(), snapshot, tiny_model, tmp_path / "straight")
    interrupted_then_resumed(rm.train, config, snapshot, tiny_model, tmp_path / "resumed")
    assert_same_run(tmp_path / "straight", tmp_path / "resumed")


def test_ppo_resumed_equals_uninterrupted(
    tmp_path: Path, snapshot: Path, sft_policy: Path, reward_model: Path
):
    def config(**extra):  # the adaptive β is part of the resumed state
        options = {**PPO_OPTIONS, "epochs": 5, "adaptive_kl": True, "ptx_coef": 0.1}
        return quiet_config("ppo", **options, reward_model=str(reward_model), **extra)

    ppo.train(config(), snapshot, sft_policy, tmp_path / "straight")
    interrupted_then_resumed(ppo.train, config, snapshot, sft_policy, tmp_path / "resumed")
    assert_same_run(tmp_path / "straight", tmp_path / "resumed")


def test_a_checkpoint_cut_off_while_saving_is_passed_over(
    tmp_path: Path, snapshot: Path, tiny_model: Path
):
    def config(**extra):
        options = {"batch_size": 8, "max_steps": 6, "learning_rate": 3e-3, "dropout": 0.1}
        return quiet_config("sft", **options, log_every=1, save_every=1, **extra)

    sft.train(config(), snapshot, tiny_model, tmp_path / "straight")
    out = tmp_path / "resumed"
    sft.train(config(stop_after_steps=3), snapshot, tiny_model, out)
    # The process died while writing step 3's state: the file never got its final name.
    newest = sorted((out / "checkpoints").glob("step-*"))[-1]
    (newest / "trainer_state.json").rename(newest / "trainer_state.json.partial")

    sft.train(config(), snapshot, tiny_model, out, resume=True)  # from step 2

    assert_same_run(tmp_path / "straight", out)
