"""Loading, saving, scoring and sampling Hugging Face models for the stages."""

import logging
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
)

from trainer.config import RunConfig
from trainer.tensors import pad, position_ids

log = logging.getLogger(__name__)

# Where architectures keep their dropout probabilities; `dropout=` sets every one present.
DROPOUT_FIELDS = (
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "summary_first_dropout",
    "attention_dropout",
    "hidden_dropout",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "dropout",
    "activation_dropout",
    "classifier_dropout",
)
# Weights stay in float32 whatever the checkpoint stores (transformers loads a bf16 checkpoint as
# bf16): AdamW steps of lr ≈ 1e-5 vanish in bf16 weights, and a policy and its reference must
# compute alike. bf16 enters as autocast on GPU.
WEIGHTS_DTYPE = torch.float32
# A reward model with no bias to take its demonstration shift keeps it here (see shift_reward).
REWARD_OFFSET_FIELD = "rankery_reward_offset"
# Where decoders keep the LayerNorm that their last hidden states pass (a child of base_model).
FINAL_NORMS = ("ln_f", "final_layer_norm", "final_layernorm")


def load_tokenizer(path: str | Path):
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        raise ValueError(
            f"the tokenizer in {path} has no pad token; add one distinct from EOS "
            "(tokenizer.add_special_tokens({'pad_token': '<|pad|>'}) and resize the embeddings)"
        )
    return tokenizer


def _model_config(path: str | Path, config: RunConfig, tokenizer, **extra):
    model_config = AutoConfig.from_pretrained(path, **extra)
    if config.dropout is not None:
        for name in DROPOUT_FIELDS:
            if isinstance(getattr(model_config, name, None), float):
                setattr(model_config, name, config.dropout)
    model_config.pad_token_id = tokenizer.pad_token_id
    return model_config


def _prepare_for_training(model: PreTrainedModel, config: RunConfig, task: str) -> nn.Module:
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if config.lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, task_type=task)
        model = get_peft_model(model, lora)
    return model


def load_policy(path: str | Path, config: RunConfig, tokenizer, trainable: bool = True):
    """A causal language model; frozen (eval mode, no gradients) unless trainable."""
    model_config = _model_config(path, config, tokenizer)
    model = AutoModelForCausalLM.from_pretrained(path, config=model_config, dtype=WEIGHTS_DTYPE)
    if not trainable:
        return model.eval().requires_grad_(False)
    return _prepare_for_training(model, config, "CAUSAL_LM")


def load_scalar_model(path: str | Path, config: RunConfig, tokenizer, trainable: bool = True):
    """A backbone with a scalar head (a reward or value model). A causal LM directory gets a
    fresh head in place of its unembedding; a saved reward model loads as it is."""
    model_config = _model_config(path, config, tokenizer, num_labels=1)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, config=model_config, dtype=WEIGHTS_DTYPE
    )
    if not trainable:
        return model.eval().requires_grad_(False)
    return _prepare_for_training(model, config, "SEQ_CLS")


def save_model(
    model: nn.Module, tokenizer, directory: Path, state_dict: dict | None = None
) -> None:
    """Saves in Hugging Face format (LoRA adapters merged), loadable with from_pretrained;
    `state_dict` is the full weights gathered from a sharded model."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(directory, state_dict=state_dict)
    tokenizer.save_pretrained(directory)


def sequence_scores(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """One score per right-padded sequence, at its last token (the EOS of a completion)."""
    scores = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0].float()
    return scores - reward_offset(model)


def reward_offset(model: nn.Module) -> float:
    """The demonstration shift a reward model keeps in its config (0 when it is in the weights)."""
    return getattr(unwrap(model).config, REWARD_OFFSET_FIELD, 0.0)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def shift_reward(model: PreTrainedModel, shift: float) -> str:
    """Subtracts `shift` from every score, in the weights wherever that is exact, so that plain
    `AutoModelForSequenceClassification.from_pretrained` gives the shifted scores. Returns
    where it went:
    - "bias": the head's bias (encoder heads have one);
    - "norm": decoder heads have no bias, but a final LayerNorm with a bias (GPT-2, GPT-NeoX,
      Falcon) feeds them only: moving that bias by −shift·w/‖w‖² along the head's weight w
      lowers w·h by exactly `shift` for every hidden state h;
    - "config": RMSNorm decoders (Llama, Qwen, Mistral) have no bias before the head, and no
      change of weights moves every score by the same constant, so the shift is recorded as
      `rankery_reward_offset`, which `sequence_scores` and `ValueModel` subtract.
    """
    layer = _score_layer(model)
    with torch.no_grad():
        if layer.bias is not None:
            layer.bias -= shift
            return "bias"
        norm = _final_norm(model)
        if norm is not None:
            weight = layer.weight[0].float()
            norm.bias -= (shift * weight / weight.dot(weight)).to(norm.bias.dtype)
            return "norm"
    offset = getattr(model.config, REWARD_OFFSET_FIELD, 0.0)
    setattr(model.config, REWARD_OFFSET_FIELD, offset + shift)
    return "config"


def shift_saved_reward(directory: Path, shift: float) -> str:
    """`shift_reward` on a saved reward model, saved back in place. Working on the saved (full,
    merged) model needs no special case for sharded (FSDP) or LoRA training."""
    model = AutoModelForSequenceClassification.from_pretrained(directory)
    where = shift_reward(model, shift)
    model.save_pretrained(directory)
    return where


def _score_layer(model: PreTrainedModel) -> nn.Linear:
    """The linear layer that produces the score: the head itself, or a head's last layer."""
    head = getattr(model, "score", None) or getattr(model, "classifier", None)
    if isinstance(head, nn.Linear):
        return head
    layers = [m for m in head.modules() if isinstance(m, nn.Linear)] if head is not None else []
    if not layers:
        raise ValueError(f"{type(model).__name__} has no linear scalar head")
    return layers[-1]


def _final_norm(model: PreTrainedModel) -> nn.LayerNorm | None:
    """The decoder's final LayerNorm with a bias, when the hidden states pass it last."""
    for name in FINAL_NORMS:
        norm = getattr(model.base_model, name, None)
        if isinstance(norm, nn.LayerNorm) and norm.bias is not None:
            return norm
    return None


def right_padded(sequences: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, ...]:
    ids = pad(sequences, pad_id, "right").to(device)
    mask = torch.zeros_like(ids)
    for row, s in enumerate(sequences):
        mask[row, : len(s)] = 1
    return ids, mask


class ValueModel(nn.Module):
    """Per-token values from a decoder with a scalar head (initialised from the reward model):
    the head applied to every position's hidden state rather than only the last one."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        if not hasattr(model, "score"):
            raise ValueError("the value model needs a decoder reward model (with a `score` head)")
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model.base_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids(attention_mask),
        ).last_hidden_state
        return self.model.score(hidden).squeeze(-1).float() - reward_offset(self.model)


@torch.no_grad()
def sample(
    model: nn.Module,
    prompts: list[list[int]],
    tokenizer,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples one completion per prompt. Returns (left-padded prompts, responses), where a
    response is cut after its first EOS and padded with the pad token."""
    model = unwrap(model)
    device = next(model.parameters()).device
    queries = pad(prompts, tokenizer.pad_token_id, "left").to(device)
    query_mask = (queries != tokenizer.pad_token_id).long()
    generation = GenerationConfig(
        do_sample=True,
        temperature=temperature,
        top_p=top_p,
        top_k=0,
        max_new_tokens=max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    was_training = model.training
    model.eval()
    output = model.generate(
        input_ids=queries, attention_mask=query_mask, generation_config=generation
    )
    model.train(was_training)
    responses = output[:, queries.shape[1] :]
    return queries, truncate_after_eos(responses, tokenizer.eos_token_id, tokenizer.pad_token_id)


def truncate_after_eos(responses: torch.Tensor, eos_id: int, pad_id: int) -> torch.Tensor:
    """Replaces every token after the first EOS with padding."""
    is_eos = responses == eos_id
    after = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    return responses.masked_fill(after, pad_id)
