from pathlib import Path

import pytest

from tests.trainer.conftest import quiet_config, ranking, read_metrics, write_snapshot
from trainer import rm
from trainer.snapshot import Snapshot

torch = pytest.importorskip("torch")


def load(model_dir: Path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from trainer.text import ChatFormat

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    return model, ChatFormat(AutoTokenizer.from_pretrained(model_dir))


def test_learns_a_synthetic_preference_to_95_percent_validation_accuracy(
    reward_model: Path,
) -> None:
    final = [m for m in read_metrics(reward_model.parent) if "validation_accuracy" in m][-1]
    assert final["validation_accuracy"] >= 0.95


def test_validation_accuracy_is_reported_by_k_and_by_labeler_group(reward_model: Path) -> None:
    final = [m for m in read_metrics(reward_model.parent) if "validation_accuracy" in m][-1]
    assert {
        "validation_accuracy_k3",
        "validation_accuracy_k4",
        "validation_accuracy_k5",
        "validation_accuracy_training",
        "validation_loss",
    } <= set(final)


def test_saved_model_loads_as_a_sequence_classifier_with_one_label(reward_model: Path) -> None:
    model, _ = load(reward_model)
    assert model.config.num_labels == 1


def test_labeler_demonstrations_score_mean_zero_straight_from_pretrained(
    reward_model: Path, snapshot: Path
) -> None:
    from trainer.models import right_padded

    model, chat = load(reward_model)
    demonstrations = Snapshot(snapshot).demonstrations("train")
    sequences = [chat.completion(d.messages[:-1], d.messages[-1].content) for d in demonstrations]
    ids, mask = right_padded(sequences, chat.pad_id, "cpu")
    with torch.no_grad():
        scores = model(input_ids=ids, attention_mask=mask).logits[:, 0]
    assert scores.mean().item() == pytest.approx(0.0, abs=1e-4)
    shift = [m for m in read_metrics(reward_model.parent) if "demonstration_shift" in m]
    assert len(shift) == 1


def test_grouped_and_pairwise_modes_give_the_same_loss_on_the_same_batch(
    tiny_model: Path, snapshot: Path
) -> None:
    model, chat = load(tiny_model)
    rankings = Snapshot(snapshot).rankings("train")[:6]
    with torch.no_grad():
        grouped, _ = rm.ranking_losses(*rm.grouped_scores(model, chat, rankings, 128, "cpu"))
        pairwise, _ = rm.ranking_losses(*rm.pairwise_scores(model, chat, rankings, 128, "cpu"))
    assert grouped.mean().item() == pytest.approx(pairwise.mean().item(), abs=1e-5)


def test_grouped_mode_forwards_each_completion_once_and_pairwise_each_pair(
    tiny_model: Path, snapshot: Path
) -> None:
    model, chat = load(tiny_model)
    rankings = Snapshot(snapshot).rankings("train")[:6]
    with torch.no_grad():
        grouped, _ = rm.grouped_scores(model, chat, rankings, 128, "cpu")
        pairwise, _ = rm.pairwise_scores(model, chat, rankings, 128, "cpu")
    assert len(grouped) == sum(r.k for r in rankings)
    assert len(pairwise) == 2 * sum(len(r.ordered_pairs()) for r in rankings)


def test_the_loss_of_a_ranking_averages_minus_log_sigmoid_over_its_pairs() -> None:
    scores = torch.tensor([2.0, 0.0, 1.0])
    pairs = [[(0, 1), (0, 2), (2, 1)]]  # ranks 1, 3, 2
    losses, correct = rm.ranking_losses(scores, pairs)
    margins = torch.tensor([2.0, 1.0, 1.0])
    assert losses.item() == pytest.approx(-torch.nn.functional.logsigmoid(margins).mean().item())
    assert correct.tolist() == [True, True, True]


def test_ties_contribute_no_pair_and_all_tied_rankings_are_skipped(
    tmp_path: Path, tiny_model: Path
) -> None:
    records = [
        ranking(i, "pick a colour for the car", [("blue", 1), ("red", 1), ("green", 2)])
        for i in range(4)
    ]
    records.append(ranking(9, "pick a colour for the car", [("blue", 1), ("red", 1)]))
    snapshot = write_snapshot(tmp_path / "snapshot", {"rm": records})
    assert Snapshot(snapshot).rankings("train")[0].ordered_pairs() == [(0, 2), (1, 2)]
    rm.train(quiet_config("rm", batch_size=4, epochs=1), snapshot, tiny_model, tmp_path / "out")
    assert read_metrics(tmp_path / "out")[0]["step"] == 1  # 4 rankings with pairs: one batch


def scalar_model_dir(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A saved sequence classifier with one label: the tiny GPT-2 or Llama, or a tiny BERT."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

    if kind == "bert":
        tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue("tokenizer_dir"))
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            num_labels=1,
            pad_token_id=tokenizer.pad_token_id,
        )
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        source = request.getfixturevalue("tiny_model" if kind == "gpt2" else "tiny_llama")
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=1, pad_token_id=tokenizer.pad_token_id
        )
    model.save_pretrained(tmp_path / kind)
    tokenizer.save_pretrained(tmp_path / kind)
    return tmp_path / kind


def some_sequences(model_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from trainer.models import right_padded
    from trainer.tiny import PAD

    tokenizer = load(model_dir)[1].tokenizer
    generator = torch.Generator().manual_seed(0)
    vocabulary = [i for i in range(len(tokenizer)) if i != tokenizer.convert_tokens_to_ids(PAD)]
    lengths = [3, 7, 5, 9]
    sequences = [
        [vocabulary[i] for i in torch.randint(len(vocabulary), (n,), generator=generator)]
        for n in lengths
    ]
    return right_padded(sequences, tokenizer.pad_token_id, "cpu")


def plain_scores(model_dir: Path, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    model, _ = load(model_dir)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits[:, 0]


@pytest.mark.parametrize(("kind", "place"), [("gpt2", "norm"), ("bert", "bias")])
def test_the_demonstration_shift_is_in_the_weights_that_from_pretrained_loads(
    kind: str, place: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from trainer.models import REWARD_OFFSET_FIELD, shift_saved_reward

    model_dir = scalar_model_dir(kind, tmp_path, request)
    ids, mask = some_sequences(model_dir)
    before = plain_scores(model_dir, ids, mask)
    assert shift_saved_reward(model_dir, 0.75) == place
    assert plain_scores(model_dir, ids, mask) == pytest.approx(before - 0.75, abs=1e-5)
    assert not hasattr(load(model_dir)[0].config, REWARD_OFFSET_FIELD)


def test_an_rmsnorm_decoder_keeps_the_shift_in_its_config_and_scoring_applies_it(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from trainer.models import REWARD_OFFSET_FIELD, sequence_scores, shift_saved_reward

    model_dir = scalar_model_dir("llama", tmp_path, request)
    ids, mask = some_sequences(model_dir)
    before = plain_scores(model_dir, ids, mask)
    assert shift_saved_reward(model_dir, 0.75) == "config"
    model, _ = load(model_dir)
    assert getattr(model.config, REWARD_OFFSET_FIELD) == 0.75
    with torch.no_grad():
        assert sequence_scores(model, ids, mask) == pytest.approx(before - 0.75, abs=1e-5)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_a_value_model_from_a_shifted_reward_model_starts_at_its_scores(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from trainer.models import ValueModel, sequence_scores, shift_saved_reward

    model_dir = scalar_model_dir(kind, tmp_path, request)
    shift_saved_reward(model_dir, 0.75)
    ids, mask = some_sequences(model_dir)
    model, _ = load(model_dir)
    last = mask.sum(dim=1) - 1
    with torch.no_grad():
        values = ValueModel(model)(ids, mask)[torch.arange(len(ids)), last]
        assert values == pytest.approx(sequence_scores(model, ids, mask), abs=1e-5)


def test_each_training_step_logs_rankings_and_tokens_per_second(reward_model: Path) -> None:
    steps = [m for m in read_metrics(reward_model.parent) if "loss" in m]
    assert all(m["rankings_per_s"] > 0 and m["tokens_per_s"] > 0 for m in steps)
