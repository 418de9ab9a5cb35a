from pathlib import Path

import pytest

from tests.trainer.conftest import PPO_OPTIONS, quiet_config, read_metrics
from trainer import ppo
from trainer.snapshot import Snapshot

torch = pytest.importorskip("torch")


def held_out_reward(policy_dir: Path, reward_dir: Path, snapshot: Path, samples: int = 8) -> float:
    """Mean reward of `samples` sampled responses to every held-out prompt."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from trainer.models import load_tokenizer, right_padded, sample, sequence_scores
    from trainer.text import ChatFormat

    chat = ChatFormat(load_tokenizer(policy_dir))
    policy = AutoModelForCausalLM.from_pretrained(policy_dir)
    reward = AutoModelForSequenceClassification.from_pretrained(reward_dir).eval()
    prompts = [chat.prompt(p.context) for p in Snapshot(snapshot).prompts("validation")]
    torch.manual_seed(1)
    _, responses = sample(policy, prompts * samples, chat.tokenizer, 6, 1.0, 1.0)
    sequences = [
        p + r[r != chat.pad_id].tolist() for p, r in zip(prompts * samples, responses, strict=True)
    ]
    with torch.no_grad():
        return sequence_scores(reward, *right_padded(sequences, chat.pad_id, "cpu")).mean().item()


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory, snapshot: Path, sft_policy: Path, reward_model: Path) -> Path:
    config = quiet_config("ppo", **PPO_OPTIONS, reward_model=str(reward_model))
    return ppo.train(config, snapshot, sft_policy, tmp_path_factory.mktemp("ppo")).parent


def test_mean_reward_on_held_out_prompts_rises_clearly(
    ppo_run: Path, sft_policy: Path, reward_model: Path, snapshot: Path
) -> None:
    before = held_out_reward(sft_policy, reward_model, snapshot)
    after = held_out_reward(ppo_run / "model", reward_model, snapshot)
    assert after > before + 0.5


def test_kl_to_the_reference_stays_under_a_bound(ppo_run: Path) -> None:
    kls = [m["kl"] for m in read_metrics(ppo_run) if "kl" in m]
    assert sum(kls[-3:]) / 3 < 3.0


def test_the_stage_metrics_are_logged_every_step(ppo_run: Path) -> None:
    steps = [m for m in read_metrics(ppo_run) if "reward" in m]
    assert len(steps) == PPO_OPTIONS["epochs"]
    assert {
        "kl",
        "entropy",
        "clip_fraction",
        "value_loss",
        "response_length",
        "kl_coef",
        "samples_per_s",
        "generation_share",
    } <= set(steps[0])


def test_the_value_model_is_saved_as_a_sequence_classifier(ppo_run: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(ppo_run / "value_model")
    assert model.config.num_labels == 1


def test_with_a_huge_kl_coefficient_the_policy_stays_near_the_reference(
    tmp_path: Path, snapshot: Path, sft_policy: Path, reward_model: Path
) -> None:
    options = {**PPO_OPTIONS, "epochs": 4, "kl_coef": 100.0}
    ppo.train(
        quiet_config("ppo", **options, reward_model=str(reward_model)),
        snapshot,
        sft_policy,
        tmp_path,
    )
    kls = [abs(m["kl"]) for m in read_metrics(tmp_path) if "kl" in m]
    assert sum(kls) / len(kls) < 0.1


def test_ptx_mixes_the_language_model_loss_into_the_update(
    tmp_path: Path, snapshot: Path, sft_policy: Path, reward_model: Path
) -> None:
    options = {**PPO_OPTIONS, "epochs": 1, "ptx_coef": 0.5}
    ppo.train(
        quiet_config("ppo", **options, reward_model=str(reward_model)),
        snapshot,
        sft_policy,
        tmp_path,
    )
    assert next(m["ptx_loss"] for m in read_metrics(tmp_path) if "ptx_loss" in m) > 0


def test_the_adaptive_controller_raises_beta_when_kl_exceeds_the_target() -> None:
    config = quiet_config("ppo", adaptive_kl=True, target_kl=1.0, kl_horizon=100)
    controller = ppo.KlController(config, 0.1)
    controller.update(kl=5.0, episodes=10)
    assert controller.value == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))
    controller.update(kl=0.5, episodes=10)
    assert controller.value < 0.1 * (1 + 0.2 * 10 / 100)


def test_the_policy_loss_clips_the_ratio() -> None:
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[2.0, 0.5]]))
    advantages = torch.tensor([[1.0, -1.0]])
    loss, clip_fraction, _ = ppo.policy_loss(new, old, advantages, torch.ones(1, 2), clip=0.2)
    assert loss.item() == pytest.approx((-1.2 + 0.8) / 2)
    assert clip_fraction.item() == 1.0


def test_the_value_loss_takes_the_worse_of_clipped_and_unclipped() -> None:
    loss = ppo.value_loss(
        torch.tensor([[1.0]]),
        torch.tensor([[0.0]]),
        torch.tensor([[1.0]]),
        torch.ones(1, 1),
        clip=0.2,
    )
    assert loss.item() == pytest.approx(0.5 * 0.8**2)
