"""Supervised fine-tuning on demonstrations: the language-model loss on assistant tokens only.

Loop: per optimizer step, one global batch of demonstrations split into `grad_accum`
micro-batches and over processes; the loss is the sum of token losses divided by the number of
assistant tokens in the whole global batch, so any split gives the same gradient. At the end of
each epoch: validation loss and, when a reward model is given, the mean reward-model score of
samples on validation prompts — the paper's checkpoint-selection rule; the best epoch's model is
kept in `epochs/epoch-N` and named in `best.json`.
"""

import json
import logging
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from trainer.config import SftConfig
from trainer.models import (
    load_policy,
    load_scalar_model,
    load_tokenizer,
    right_padded,
    sample,
    sequence_scores,
)
from trainer.run import Run
from trainer.snapshot import Demonstration
from trainer.tensors import token_logprobs
from trainer.text import ChatFormat, truncate_left

log = logging.getLogger(__name__)


def demonstration_batch(
    chat: ChatFormat, demonstrations: list[Demonstration], max_length: int, device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input ids, attention mask, loss mask), right-padded."""
    tokenized = [chat.conversation(d.messages) for d in demonstrations]
    ids, attention = right_padded(
        [truncate_left(t.input_ids, max_length) for t in tokenized], chat.pad_id, device
    )
    loss_mask = torch.zeros_like(ids)
    for row, t in enumerate(tokenized):
        kept = truncate_left(t.assistant_mask, max_length)
        loss_mask[row, : len(kept)] = torch.tensor(kept, dtype=torch.long)
    return ids, attention, loss_mask


def lm_loss_sum(
    model: torch.nn.Module, ids: torch.Tensor, attention: torch.Tensor, loss_mask: torch.Tensor
) -> torch.Tensor:
    """The summed negative log-likelihood of the tokens where loss_mask is 1."""
    logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1]
    logprobs = token_logprobs(logits, ids[:, 1:])
    return -(logprobs * loss_mask[:, 1:]).sum()


def validation_loss(run: Run, model, chat: ChatFormat, demonstrations, batch_size: int) -> float:
    model.eval()
    total, tokens = 0.0, 0.0
    mine = run.shard(demonstrations)
    with torch.no_grad():
        for start in range(0, len(mine), batch_size):
            ids, attention, loss_mask = demonstration_batch(
                chat, mine[start : start + batch_size], run.config.max_length, run.device
            )
            total += float(lm_loss_sum(model, ids, attention, loss_mask))
            tokens += float(loss_mask[:, 1:].sum())
    model.train()
    return run.total(total) / max(1.0, run.total(tokens))


def mean_reward(run: Run, policy, reward_model, chat: ChatFormat, contexts, config) -> float:
    """Mean reward-model score of one sampled completion per prompt."""
    total, batch = 0.0, max(1, config.batch_size // run.world)
    mine = run.shard(contexts)
    for start in range(0, len(mine), batch):
        prompts = [chat.prompt(c) for c in mine[start : start + batch]]
        _, responses = sample(
            policy,
            prompts,
            chat.tokenizer,
            config.max_new_tokens,
            config.temperature,
            config.top_p,
        )
        sequences = [
            p + [t for t in r.tolist() if t != chat.pad_id]
            for p, r in zip(prompts, responses, strict=True)
        ]
        with torch.no_grad():
            ids, attention = right_padded(sequences, chat.pad_id, run.device)
            total += float(sequence_scores(reward_model, ids, attention).sum())
    return run.total(total) / max(1, len(contexts))


def train(
    config: SftConfig, data: str | Path, model: str | Path, out: str | Path, resume: bool = False
) -> Path:
    run = Run("sft", config, data, model, out, resume)
    tokenizer = load_tokenizer(model)
    chat = ChatFormat(tokenizer)
    train_set = run.snapshot.demonstrations("train")
    validation = run.snapshot.demonstrations("validation")
    run.check_batch_size(config.batch_size, len(train_set), "demonstrations")

    policy = load_policy(model, config, tokenizer)
    optimizer = torch.optim.AdamW(
        policy.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    policy, optimizer = run.accelerator.prepare(policy, optimizer)
    steps_per_epoch, total_steps = run.step_counts(len(train_set))
    scheduler = run.schedule(optimizer, total_steps)
    reward_model = None
    if config.reward_model:
        reward_model = load_scalar_model(config.reward_model, config, tokenizer, trainable=False)
        reward_model.to(run.device)
    contexts = _validation_contexts(validation, config.selection_prompts)

    state = run.load_checkpoint() or {"step": 0, "best": None}
    run.progress(state["step"], total_steps)
    policy.train()
    tick, tokens_since = time.perf_counter(), 0.0
    for step in range(state["step"], total_steps):
        epoch, index = divmod(step, steps_per_epoch)
        batch = run.epoch_batches(len(train_set), config.batch_size, epoch)[index]
        micro_batches = [
            demonstration_batch(chat, [train_set[i] for i in m], config.max_length, run.device)
            for m in run.micro_batches(batch)
        ]
        loss_tokens = run.total(sum(float(b[2][:, 1:].sum()) for b in micro_batches))
        forwarded = run.total(sum(float(b[1].sum()) for b in micro_batches))
        loss_total = 0.0
        for j, (ids, attention, loss_mask) in enumerate(micro_batches):
            last = j == len(micro_batches) - 1
            with run.accelerator.no_sync(policy) if not last else nullcontext():
                # DDP averages gradients over processes; scaling by the process count turns
                # that into the sum over the global batch divided by its token count.
                loss = lm_loss_sum(policy, ids, attention, loss_mask) * run.world / loss_tokens
                run.accelerator.backward(loss)
            loss_total += float(loss.detach()) / run.world
        run.accelerator.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        run.advance()
        done = step + 1
        loss_total = run.total(loss_total)
        tokens_since += forwarded
        if done % config.log_every == 0 or done == total_steps:
            run.log_metrics(
                done,
                total_steps,
                {
                    "loss": loss_total,
                    "lr": scheduler.get_last_lr()[0],
                    "epoch": epoch,
                    "tokens_per_s": tokens_since / (time.perf_counter() - tick),
                },
            )
            tick, tokens_since = time.perf_counter(), 0.0
        epoch_end = done % steps_per_epoch == 0 or done == total_steps
        if epoch_end:
            metrics: dict[str, float] = {"epoch": epoch + 1}
            if validation:
                metrics["validation_loss"] = validation_loss(
                    run, policy, chat, validation, config.batch_size
                )
            if reward_model is not None and contexts:
                score = mean_reward(run, policy, reward_model, chat, contexts, config)
                metrics["validation_reward"] = score
                epoch_dir = run.out / "epochs" / f"epoch-{epoch + 1}"
                run.save_model(policy, tokenizer, epoch_dir)
                if state["best"] is None or score > state["best"]["validation_reward"]:
                    state["best"] = {
                        "epoch": epoch + 1,
                        "validation_reward": score,
                        "model": str(epoch_dir),
                    }
                    if run.is_main:
                        (run.out / "best.json").write_text(json.dumps(state["best"], indent=2))
            run.log_metrics(done, total_steps, metrics)
        if run.checkpoint_due(done, epoch_end):
            run.save_checkpoint(done, {"best": state["best"]})
        if done == config.stop_after_steps:
            log.info("stopping after %d steps as configured", done)
            return run.out
    return run.finish(policy, tokenizer, total_steps)


def _validation_contexts(validation: list[Demonstration], limit: int) -> list:
    """The prompts of the validation demonstrations (the conversation before the last
    assistant turn), one per prompt id, in file order."""
    seen, contexts = set(), []
    for d in validation:
        if d.prompt_id not in seen and len(contexts) < limit:
            seen.add(d.prompt_id)
            contexts.append(d.messages[:-1])
    return contexts


if __name__ == "__main__":
    from trainer.cli import stage_main

    stage_main("sft")
