"""PPO and PPO-ptx against a frozen reward model (InstructGPT's RL stage).

The policy starts from the SFT model; the reference (the SFT model, frozen) anchors the KL
penalty; the reward model is frozen; the value model is initialised from the reward model. Each
step takes a batch of prompts through five phases (numbered in `rollout` and `train`):
rollout, score, KL penalty, advantages, update.

Implementation details, chosen deliberately:
- Generation: prompts are left-padded (so every response starts at the same column) and
  sampled with temperature and top-p, top-k off. Position ids are counted over real tokens, so
  padding does not shift them. Pad and EOS are distinct tokens.
- EOS: a response is cut after its first EOS (later tokens become padding and are masked out
  of every loss and statistic); the EOS itself is part of the response. `missing_eos_penalty`
  is subtracted from the score of responses that never produced EOS.
- Log-probabilities divide the logits by the sampling temperature, for the policy and the
  reference alike, so the KL is measured for the distribution that was actually sampled.
- Reward: the RM score (optionally clipped to ±reward_clip) at the last response token, minus
  β·(log π − log π_ref) at every response token. The KL estimator is the plain per-token
  log-ratio of the sampled token (k1: unbiased for KL(π‖π_ref) in expectation); the logged
  `kl` is its sum over a response, averaged over responses. β is fixed, or adapted after each
  step by the proportional controller of Ziegler et al. towards `target_kl`.
- Advantages: GAE (γ, λ) over response tokens with values from the value model; the episode
  ends at the last real token. Advantages are whitened per minibatch over its real tokens.
- Losses: clipped policy-ratio loss (clip_range), clipped value loss (value_clip_range, the max
  of clipped and unclipped squared errors), both as means over real response tokens. A
  minibatch whose mean ratio exceeds `max_ratio` is skipped (the decision is taken over all
  processes, so they stay in step).
- ptx: γ_ptx times the SFT loss (assistant tokens of training demonstrations) is added to the
  policy loss of every minibatch; γ_ptx = 0 is plain PPO.
- Dropout is off in every model (config `dropout`, default 0), and generation runs in eval
  mode. The reward model must share the policy's tokenizer: it scores the sampled token ids.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from trainer.config import ConfigError, PpoConfig
from trainer.models import (
    ValueModel,
    load_policy,
    load_scalar_model,
    load_tokenizer,
    right_padded,
    sample,
    sequence_scores,
)
from trainer.run import Run
from trainer.sft import demonstration_batch, lm_loss_sum, mean_reward
from trainer.tensors import (
    entropy_from_logits,
    gae,
    masked_mean,
    masked_whiten,
    position_ids,
    token_logprobs,
)
from trainer.text import ChatFormat, truncate_left

log = logging.getLogger(__name__)


@dataclass
class Rollout:
    """One batch of episodes on this process; (B, R) tensors are per response token."""

    queries: torch.Tensor  # (B, Q), left-padded
    responses: torch.Tensor  # (B, R), padded after the first EOS
    mask: torch.Tensor  # (B, R), 1 on real response tokens
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


class KlController:
    """β, fixed or adapted towards a target KL (Ziegler et al. 2019)."""

    def __init__(self, config: PpoConfig, value: float) -> None:
        self.config, self.value = config, value

    def update(self, kl: float, episodes: int) -> None:
        if self.config.adaptive_kl:
            error = min(max(kl / self.config.target_kl - 1, -0.2), 0.2)
            self.value *= 1 + error * episodes / self.config.kl_horizon


def response_logprobs(model, queries, responses, pad_id: int, temperature: float):
    """Log-probabilities (B, R) of the response tokens and the logits they come from."""
    ids = torch.cat([queries, responses], dim=1)
    attention = (ids != pad_id).long()
    logits = model(input_ids=ids, attention_mask=attention, position_ids=position_ids(attention))
    logits = logits.logits[:, queries.shape[1] - 1 : -1] / temperature
    return token_logprobs(logits, responses), logits


def response_values(value_model, queries, responses, pad_id: int) -> torch.Tensor:
    ids = torch.cat([queries, responses], dim=1)
    values = value_model(ids, (ids != pad_id).long())
    return values[:, queries.shape[1] - 1 : -1]


def policy_loss(logprobs, old_logprobs, advantages, mask, clip: float):
    """The clipped surrogate loss; also the clipped share of tokens and the mean ratio."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip, 1 + clip)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    return loss, masked_mean((clipped > unclipped).float(), mask), masked_mean(ratio, mask)


def value_loss(values, old_values, returns, mask, clip: float) -> torch.Tensor:
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    return 0.5 * masked_mean(torch.max((values - returns) ** 2, (clipped - returns) ** 2), mask)


@torch.no_grad()
def rollout(run: Run, models: dict, chat: ChatFormat, contexts, kl: KlController):
    config: PpoConfig = run.config
    # 1. Rollout: sample one response per prompt.
    started = time.perf_counter()
    prompts = [truncate_left(chat.prompt(c), config.max_length) for c in contexts]
    queries, responses = sample(
        models["policy"],
        prompts,
        chat.tokenizer,
        config.max_new_tokens,
        config.temperature,
        config.top_p,
    )
    generation_seconds = time.perf_counter() - started
    mask = (responses != chat.pad_id).float()
    # 2. Score: the reward model reads prompt + response, right-padded, at its last token.
    sequences = [p + r[r != chat.pad_id].tolist() for p, r in zip(prompts, responses, strict=True)]
    scores = sequence_scores(models["reward"], *right_padded(sequences, chat.pad_id, run.device))
    if config.reward_clip is not None:
        scores = scores.clamp(-config.reward_clip, config.reward_clip)
    has_eos = (responses == chat.eos_id).any(dim=1)
    if config.missing_eos_penalty is not None:
        scores = torch.where(has_eos, scores, scores - config.missing_eos_penalty)
    # 3. KL penalty per token against the reference, and the score at the last token.
    logprobs, logits = response_logprobs(
        models["policy"], queries, responses, chat.pad_id, config.temperature
    )
    ref_logprobs, _ = response_logprobs(
        models["reference"], queries, responses, chat.pad_id, config.temperature
    )
    log_ratio = (logprobs - ref_logprobs) * mask
    rewards = -kl.value * log_ratio
    last = mask.sum(dim=1).long() - 1
    rewards[torch.arange(len(last)), last] += scores
    # 4. Advantages by GAE on the value model's estimates.
    values = response_values(models["value"], queries, responses, chat.pad_id) * mask
    advantages, returns = gae(rewards, values, mask, config.gamma, config.lam)
    stats = {
        "reward": scores.mean(),
        "kl": log_ratio.sum(dim=1).mean(),
        "entropy": masked_mean(entropy_from_logits(logits), mask),
        "response_length": mask.sum(dim=1).mean(),
        "no_eos": 1 - has_eos.float().mean(),
        "generation_seconds": generation_seconds,
    }
    episode = Rollout(queries, responses, mask, logprobs, values, advantages, returns)
    return episode, {k: run.total(v) / run.world for k, v in stats.items()}


def train(
    config: PpoConfig, data: str | Path, model: str | Path, out: str | Path, resume: bool = False
) -> Path:
    if not config.reward_model:
        raise ConfigError("PPO needs a reward model: --reward-model DIR")
    run = Run("ppo", config, data, model, out, resume)
    tokenizer = load_tokenizer(model)
    if load_tokenizer(config.reward_model).get_vocab() != tokenizer.get_vocab():
        raise ConfigError("the reward model's tokenizer differs from the policy's")
    chat = ChatFormat(tokenizer)
    prompts = run.snapshot.prompts("train")
    held_out = [p.context for p in run.snapshot.prompts("validation")]
    demonstrations = run.snapshot.demonstrations("train")
    run.check_batch_size(config.batch_size, len(prompts), "prompts")
    if config.ptx_coef > 0 and not demonstrations:
        raise ConfigError("ptx_coef > 0 needs demonstrations in the snapshot")

    policy = load_policy(model, config, tokenizer)
    value_model = ValueModel(load_scalar_model(config.reward_model, config, tokenizer))
    policy_optimizer = torch.optim.AdamW(policy.parameters(), lr=config.learning_rate)
    value_optimizer = torch.optim.AdamW(value_model.parameters(), lr=config.value_learning_rate)
    policy, policy_optimizer, value_model, value_optimizer = run.accelerator.prepare(
        policy, policy_optimizer, value_model, value_optimizer
    )
    optimizers = (policy_optimizer, value_optimizer)
    models = {
        "policy": policy,
        "value": value_model,
        "reference": load_policy(model, config, tokenizer, trainable=False).to(run.device),
        "reward": load_scalar_model(config.reward_model, config, tokenizer, trainable=False).to(
            run.device
        ),
    }
    steps_per_epoch, total_steps = run.step_counts(len(prompts))
    schedulers = [
        run.schedule(policy_optimizer, total_steps),
        run.schedule(value_optimizer, total_steps),
    ]

    state = run.load_checkpoint() or {"step": 0, "kl_coef": config.kl_coef}
    kl = KlController(config, state["kl_coef"])
    if state["step"] == 0 and held_out:
        run.log_metrics(
            0,
            total_steps,
            {
                "validation_reward": mean_reward(
                    run, policy, models["reward"], chat, held_out, config
                )
            },
        )
    run.progress(state["step"], total_steps)
    for step in range(state["step"], total_steps):
        started = time.perf_counter()
        epoch, index = divmod(step, steps_per_epoch)
        batch = run.epoch_batches(len(prompts), config.batch_size, epoch)[index]
        mine = [prompts[i].context for m in run.micro_batches(batch) for i in m]
        episode, metrics = rollout(run, models, chat, mine, kl)
        metrics.update(update(run, models, optimizers, episode, demonstrations, chat))
        for scheduler in schedulers:
            scheduler.step()
        kl.update(metrics["kl"], config.batch_size)
        run.advance()
        done = step + 1
        seconds = time.perf_counter() - started
        metrics.update(
            kl_coef=kl.value,
            lr=schedulers[0].get_last_lr()[0],
            epoch=epoch,
            samples_per_s=config.batch_size / seconds,
            generation_share=metrics.pop("generation_seconds") / seconds,
        )
        if done % config.log_every == 0 or done == total_steps:
            run.log_metrics(done, total_steps, metrics)
        epoch_end = done % steps_per_epoch == 0 or done == total_steps
        if epoch_end and held_out:
            run.log_metrics(
                done,
                total_steps,
                {
                    "epoch": epoch + 1,
                    "validation_reward": mean_reward(
                        run, policy, models["reward"], chat, held_out, config
                    ),
                },
            )
        if run.checkpoint_due(done, epoch_end):
            run.save_checkpoint(done, {"kl_coef": kl.value})
        if done == config.stop_after_steps:
            log.info("stopping after %d steps as configured", done)
            return run.out
    run.save_model(
        run.accelerator.unwrap_model(value_model).model, tokenizer, run.out / "value_model"
    )
    return run.finish(policy, tokenizer, total_steps)


def update(
    run: Run, models: dict, optimizers: tuple, episode: Rollout, demonstrations, chat: ChatFormat
) -> dict[str, float]:
    """5. Update: PPO epochs over minibatches of the rollout, policy and value together."""
    config: PpoConfig = run.config
    policy, value_model = models["policy"], models["value"]
    policy_optimizer, value_optimizer = optimizers
    size = config.minibatch_size // run.world
    rows = len(episode.queries)
    sums = {
        "policy_loss": 0.0,
        "value_loss": 0.0,
        "ptx_loss": 0.0,
        "clip_fraction": 0.0,
        "ratio": 0.0,
        "skipped": 0.0,
    }
    updates = 0
    for _ in range(config.ppo_epochs):
        order = torch.randperm(rows)
        for start in range(0, rows - size + 1, size):
            i = order[start : start + size].to(run.device)
            mask = episode.mask[i]
            advantages = masked_whiten(episode.advantages[i], mask)
            logprobs, _ = response_logprobs(
                policy, episode.queries[i], episode.responses[i], chat.pad_id, config.temperature
            )
            pg_loss, clip_fraction, ratio = policy_loss(
                logprobs, episode.logprobs[i], advantages, mask, config.clip_range
            )
            values = response_values(
                value_model, episode.queries[i], episode.responses[i], chat.pad_id
            )
            vf_loss = value_loss(
                values, episode.values[i], episode.returns[i], mask, config.value_clip_range
            )
            loss = pg_loss
            if config.ptx_coef > 0:
                ptx_loss = ptx_batch_loss(run, policy, chat, demonstrations)
                loss = loss + config.ptx_coef * ptx_loss
                sums["ptx_loss"] += float(ptx_loss)
            updates += 1
            if run.total(ratio.detach()) / run.world > config.max_ratio:
                sums["skipped"] += 1
                policy_optimizer.zero_grad()
                value_optimizer.zero_grad()
                continue
            run.accelerator.backward(loss + vf_loss)
            run.accelerator.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            run.accelerator.clip_grad_norm_(value_model.parameters(), config.max_grad_norm)
            policy_optimizer.step()
            value_optimizer.step()
            policy_optimizer.zero_grad()
            value_optimizer.zero_grad()
            for key, value in (
                ("policy_loss", pg_loss),
                ("value_loss", vf_loss),
                ("clip_fraction", clip_fraction),
                ("ratio", ratio),
            ):
                sums[key] += float(value.detach())
    done = max(1, updates - sums["skipped"])
    return {
        key: run.total(value / (updates if key == "skipped" else done)) / run.world
        for key, value in sums.items()
    }


def ptx_batch_loss(run: Run, policy, chat: ChatFormat, demonstrations) -> torch.Tensor:
    """The SFT loss on a batch of demonstrations, drawn by the global RNG."""
    size = max(1, run.config.ptx_batch_size // run.world)
    picks = torch.randint(len(demonstrations), (size,)).tolist()
    ids, attention, loss_mask = demonstration_batch(
        chat, [demonstrations[i] for i in picks], run.config.max_length, run.device
    )
    return lm_loss_sum(policy, ids, attention, loss_mask) / loss_mask[:, 1:].sum().clamp(min=1)


if __name__ == "__main__":
    from trainer.cli import stage_main

    stage_main("ppo")
