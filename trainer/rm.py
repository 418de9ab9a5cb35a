"""Reward model: a backbone with a scalar head trained on K-wise rankings.

K-wise grouping (the paper's choice): each ranking — one labeler's ranking of the K completions
of one prompt — is one batch element. Every completion is forwarded once, and the ranking's loss
is the mean of −log σ(r_better − r_worse) over all its ordered pairs (tied completions make no
pair). The batch loss is the mean over rankings. `mode=pairwise` forwards the two completions of
every pair separately (C(K,2) × 2 forwards instead of K) and averages the same way, so both
modes give the same loss on the same batch; it exists for comparison.

The score is read at the last token of prompt + completion + EOS. After training, the scores are
shifted so that the labelers' demonstrations (the SFT training split) score mean 0, in the saved
model's weights where that is exact (see `models.shift_reward`), so that `from_pretrained` alone
gives centred scores; the shift is logged as `demonstration_shift`.
"""

import logging
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from trainer.config import RmConfig
from trainer.models import (
    load_scalar_model,
    load_tokenizer,
    right_padded,
    sequence_scores,
    shift_saved_reward,
)
from trainer.run import Run
from trainer.snapshot import Ranking
from trainer.text import ChatFormat, truncate_left

log = logging.getLogger(__name__)


def ranking_losses(
    scores: torch.Tensor, pairs: list[list[tuple[int, int]]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per ranking, the mean of −log σ(s_better − s_worse) over its pairs, and per pair whether
    the better completion scores higher. `pairs[i]` holds (better, worse) indices into scores."""
    better = torch.tensor([b for p in pairs for b, _ in p], device=scores.device)
    worse = torch.tensor([w for p in pairs for _, w in p], device=scores.device)
    owner = torch.tensor([i for i, p in enumerate(pairs) for _ in p], device=scores.device)
    margins = scores[better] - scores[worse]
    counts = torch.tensor([len(p) for p in pairs], device=scores.device, dtype=scores.dtype)
    losses = torch.zeros(len(pairs), device=scores.device, dtype=scores.dtype)
    losses = losses.index_add(0, owner, -F.logsigmoid(margins)) / counts
    return losses, margins > 0


def grouped_sequences(chat: ChatFormat, rankings: list[Ranking], max_length: int):
    """Every completion once. Returns (token sequences, pairs as indices into them)."""
    sequences, pairs = [], []
    for ranking in rankings:
        first = len(sequences)
        sequences += [
            truncate_left(chat.completion(ranking.context, c.text), max_length)
            for c in ranking.completions
        ]
        pairs.append([(first + b, first + w) for b, w in ranking.ordered_pairs()])
    return sequences, pairs


def pairwise_sequences(chat: ChatFormat, rankings: list[Ranking], max_length: int):
    """Both completions of every pair (each completion once per pair it is in)."""
    sequences, pairs = [], []
    for ranking in rankings:
        pairs.append([])
        for b, w in ranking.ordered_pairs():
            pairs[-1].append((len(sequences), len(sequences) + 1))
            sequences += [
                truncate_left(
                    chat.completion(ranking.context, ranking.completions[i].text), max_length
                )
                for i in (b, w)
            ]
    return sequences, pairs


SEQUENCES = {"grouped": grouped_sequences, "pairwise": pairwise_sequences}


def ranking_scores(
    model, chat: ChatFormat, rankings: list[Ranking], max_length: int, device, mode: str
):
    """(scores, pairs as indices into scores, tokens forwarded) for a batch of rankings."""
    sequences, pairs = SEQUENCES[mode](chat, rankings, max_length)
    ids, attention = right_padded(sequences, chat.pad_id, device)
    return sequence_scores(model, ids, attention), pairs, sum(len(s) for s in sequences)


def grouped_scores(model, chat: ChatFormat, rankings: list[Ranking], max_length: int, device):
    """Every completion forwarded once. Returns (scores, pairs as indices into scores)."""
    return ranking_scores(model, chat, rankings, max_length, device, "grouped")[:2]


def pairwise_scores(model, chat: ChatFormat, rankings: list[Ranking], max_length: int, device):
    """Both completions of every pair forwarded. Returns (scores, pairs)."""
    return ranking_scores(model, chat, rankings, max_length, device, "pairwise")[:2]


def evaluate(run: Run, model, chat: ChatFormat, rankings: list[Ranking]) -> dict[str, float]:
    """Validation loss and pairwise accuracy, overall, by K and by labeler group."""
    model.eval()
    sums: dict[str, float] = defaultdict(float)
    mine = run.shard(rankings)
    size = max(1, run.config.batch_size // run.world)
    with torch.no_grad():
        for start in range(0, len(mine), size):
            batch = mine[start : start + size]
            scores, pairs = grouped_scores(model, chat, batch, run.config.max_length, run.device)
            losses, correct = ranking_losses(scores, pairs)
            sums["loss"] += float(losses.sum())
            sums["rankings"] += len(batch)
            at = 0
            for ranking, p in zip(batch, pairs, strict=True):
                right = float(correct[at : at + len(p)].sum())
                at += len(p)
                for key in ("", f"_k{ranking.k}", f"_{ranking.labeler_group}"):
                    sums[f"correct{key}"] += right
                    sums[f"pairs{key}"] += len(p)
    model.train()
    # Every process must reduce the same keys in the same order.
    keys = sorted(
        {f"{k}{suffix}" for k in ("correct", "pairs") for suffix in _suffixes(rankings)}
        | {"loss", "rankings"}
    )
    totals = {key: run.total(sums[key]) for key in keys}
    metrics = {"validation_loss": totals["loss"] / max(1.0, totals["rankings"])}
    for suffix in _suffixes(rankings):
        if totals[f"pairs{suffix}"]:
            metrics[f"validation_accuracy{suffix}"] = (
                totals[f"correct{suffix}"] / totals[f"pairs{suffix}"]
            )
    return metrics


def _suffixes(rankings: list[Ranking]) -> list[str]:
    return [
        "",
        *sorted({f"_k{r.k}" for r in rankings}),
        *sorted({f"_{r.labeler_group}" for r in rankings}),
    ]


def demonstration_mean(run: Run, model, chat: ChatFormat, demonstrations) -> float:
    """The mean score of the labelers' demonstrations (their last assistant turn)."""
    model.eval()
    total = 0.0
    mine = run.shard(demonstrations)
    size = max(1, run.config.batch_size // run.world)
    with torch.no_grad():
        for start in range(0, len(mine), size):
            sequences = [
                truncate_left(
                    chat.completion(d.messages[:-1], d.messages[-1].content), run.config.max_length
                )
                for d in mine[start : start + size]
            ]
            total += float(
                sequence_scores(model, *right_padded(sequences, chat.pad_id, run.device)).sum()
            )
    return run.total(total) / len(demonstrations)


def train(
    config: RmConfig, data: str | Path, model: str | Path, out: str | Path, resume: bool = False
) -> Path:
    run = Run("rm", config, data, model, out, resume)
    tokenizer = load_tokenizer(model)
    chat = ChatFormat(tokenizer)
    train_set = [r for r in run.snapshot.rankings("train") if r.ordered_pairs()]
    validation = [r for r in run.snapshot.rankings("validation") if r.ordered_pairs()]
    run.check_batch_size(config.batch_size, len(train_set), "rankings")

    reward_model = load_scalar_model(model, config, tokenizer)
    optimizer = torch.optim.AdamW(
        reward_model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    reward_model, optimizer = run.accelerator.prepare(reward_model, optimizer)
    steps_per_epoch, total_steps = run.step_counts(len(train_set))
    scheduler = run.schedule(optimizer, total_steps)

    state = run.load_checkpoint() or {"step": 0}
    run.progress(state["step"], total_steps)
    reward_model.train()
    tick, rankings_since, tokens_since = time.perf_counter(), 0, 0.0
    for step in range(state["step"], total_steps):
        epoch, index = divmod(step, steps_per_epoch)
        batch = run.epoch_batches(len(train_set), config.batch_size, epoch)[index]
        micro_batches = run.micro_batches(batch)
        loss_total, correct, pairs_total, step_tokens = 0.0, 0.0, 0, 0
        for j, indices in enumerate(micro_batches):
            last = j == len(micro_batches) - 1
            with run.accelerator.no_sync(reward_model) if not last else nullcontext():
                rankings = [train_set[i] for i in indices]
                scores, pairs, tokens = ranking_scores(
                    reward_model, chat, rankings, config.max_length, run.device, config.mode
                )
                losses, right = ranking_losses(scores, pairs)
                # Mean over the rankings of the global batch (DDP averages over processes).
                loss = losses.sum() * run.world / config.batch_size
                run.accelerator.backward(loss)
            loss_total += float(loss.detach()) / run.world
            correct, pairs_total = correct + float(right.sum()), pairs_total + len(right)
            step_tokens += tokens
        run.accelerator.clip_grad_norm_(reward_model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        run.advance()
        done = step + 1
        loss_total = run.total(loss_total)
        accuracy = run.total(correct) / run.total(pairs_total)
        rankings_since += config.batch_size
        tokens_since += run.total(step_tokens)
        if done % config.log_every == 0 or done == total_steps:
            seconds = time.perf_counter() - tick
            run.log_metrics(
                done,
                total_steps,
                {
                    "loss": loss_total,
                    "accuracy": accuracy,
                    "lr": scheduler.get_last_lr()[0],
                    "epoch": epoch,
                    "rankings_per_s": rankings_since / seconds,
                    "tokens_per_s": tokens_since / seconds,
                },
            )
            tick, rankings_since, tokens_since = time.perf_counter(), 0, 0.0
        epoch_end = done % steps_per_epoch == 0 or done == total_steps
        if epoch_end and validation:
            run.log_metrics(
                done,
                total_steps,
                {"epoch": epoch + 1, **evaluate(run, reward_model, chat, validation)},
            )
        if run.checkpoint_due(done, epoch_end):
            run.save_checkpoint(done, {})
        if done == config.stop_after_steps:
            log.info("stopping after %d steps as configured", done)
            return run.out

    shift = None
    demonstrations = run.snapshot.demonstrations("train")
    if demonstrations:
        shift = demonstration_mean(run, reward_model, chat, demonstrations)
        run.log_metrics(total_steps, total_steps, {"demonstration_shift": shift})
    else:
        log.warning("no demonstrations in the snapshot: the reward scores are not centred")
    out = run.finish(reward_model, tokenizer, total_steps)
    if shift is not None and run.is_main:
        where = shift_saved_reward(out, shift)
        log.info("demonstrations score mean 0: scores moved by %.4g (in the %s)", -shift, where)
    run.accelerator.wait_for_everyone()
    return out


if __name__ == "__main__":
    from trainer.cli import stage_main

    stage_main("rm")
