import itertools

import pytest

torch = pytest.importorskip("torch")

from trainer.models import truncate_after_eos  # noqa: E402
from trainer.tensors import (  # noqa: E402
    gae,
    masked_mean,
    masked_whiten,
    pad,
    position_ids,
    token_logprobs,
    warmup_cosine,
)


def test_pad_on_either_side() -> None:
    assert pad([[1, 2], [3]], 0, "right").tolist() == [[1, 2], [3, 0]]
    assert pad([[1, 2], [3]], 0, "left").tolist() == [[1, 2], [0, 3]]


def test_position_ids_ignore_left_padding() -> None:
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert position_ids(mask).tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]


def test_masked_mean_ignores_masked_entries() -> None:
    values = torch.tensor([[1.0, 3.0, 100.0]])
    assert masked_mean(values, torch.tensor([[1, 1, 0]])).item() == 2.0


def test_whitening_gives_zero_mean_unit_variance_on_the_mask() -> None:
    values = torch.tensor([[1.0, 2.0, 3.0, 50.0], [4.0, 5.0, 6.0, 50.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0]])
    whitened = masked_whiten(values, mask)
    kept = whitened[mask.bool()]
    assert kept.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert kept.std().item() == pytest.approx(1.0, abs=1e-4)
    assert whitened[:, 3].tolist() == [0.0, 0.0]


def test_token_logprobs_are_log_softmax_at_the_labels() -> None:
    logits = torch.tensor([[[0.0, 0.0], [2.0, 0.0]]])
    result = token_logprobs(logits, torch.tensor([[1, 0]]))
    expected = torch.log_softmax(torch.tensor([2.0, 0.0]), 0)[0]
    assert result[0, 0].item() == pytest.approx(-0.6931, abs=1e-4)
    assert result[0, 1].item() == pytest.approx(expected.item())


def test_gae_matches_the_recursion_by_hand() -> None:
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.2, 0.4, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    gamma, lam = 0.9, 0.8
    d2 = 1.0 - 0.4  # the last real token ends the episode: no value after it
    d1 = 0.0 + gamma * 0.4 - 0.2
    d0 = 0.0 + gamma * 0.2 - 0.5
    a2, a1 = d2, d1 + gamma * lam * d2
    a0 = d0 + gamma * lam * a1
    advantages, returns = gae(rewards, values, mask, gamma, lam)
    assert advantages[0].tolist() == pytest.approx([a0, a1, a2, 0.0])
    assert returns[0].tolist() == pytest.approx([a0 + 0.5, a1 + 0.2, a2 + 0.4, 0.0])


def test_tokens_after_the_first_eos_become_padding() -> None:
    responses = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8]])
    assert truncate_after_eos(responses, eos_id=2, pad_id=0).tolist() == [
        [5, 2, 0, 0],
        [5, 6, 7, 8],
    ]


def test_learning_rate_warms_up_then_decays_by_cosine() -> None:
    factors = [warmup_cosine(s, total_steps=10, warmup_steps=2, min_ratio=0.1) for s in range(11)]
    assert factors[:2] == [0.5, 1.0]
    assert factors[2] == pytest.approx(1.0)
    assert factors[6] == pytest.approx(0.55)
    assert factors[10] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(factors[1:]))
