"""Tiny causal language models built from a config, with a tokenizer trained on the spot.

Nothing can be downloaded here (tests, CI, the offline demo), so the demo's base model and the
tests' models are made from scratch: a byte-level BPE tokenizer trained on a handful of texts,
and a randomly initialised two-layer GPT-2 or Llama. Both are saved and loaded back through the
ordinary `from_pretrained` path, like any model a user brings.
"""

from collections.abc import Iterable
from pathlib import Path

EOS = "<|endoftext|>"
PAD = "<|pad|>"


def train_tokenizer(texts: Iterable[str], directory: Path, vocab_size: int = 400) -> Path:
    """A byte-level BPE tokenizer with an EOS token and a distinct pad token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(list(texts), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, pad_token=PAD)
    tokenizer.save_pretrained(directory)
    return directory


def build_tiny_model(
    directory: Path, tokenizer_dir: Path, kind: str = "gpt2", seed: int = 0
) -> Path:
    """A randomly initialised two-layer causal LM ("gpt2" or "llama"), saved with its tokenizer."""
    import torch
    from transformers import (
        AutoTokenizer,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
    )

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    ids = {
        "bos_token_id": tokenizer.eos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if kind == "gpt2":
        config = GPT2Config(
            vocab_size=len(tokenizer), n_positions=128, n_embd=64, n_layer=2, n_head=2, **ids
        )
        model = GPT2LMHeadModel(config)
    else:
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=128,
            **ids,
        )
        model = LlamaForCausalLM(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_demo_base(directory: Path, texts: Iterable[str]) -> Path:
    """The demo's base model: a tokenizer trained on the demo's texts and a tiny GPT-2."""
    directory.mkdir(parents=True, exist_ok=True)
    train_tokenizer(texts, directory)
    return build_tiny_model(directory, directory)
