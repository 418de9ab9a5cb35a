"""Reward-model training throughput: K-wise grouping against pairwise forwarding.

For K = 4..9 it trains the same model on the same rankings (one optimizer step per batch of
rankings), once forwarding every completion once (grouped, the paper's way) and once forwarding
both completions of every pair (pairwise), and prints sequences forwarded per ranking and
rankings (samples) per second. Without --model it builds a small GPT-2-style model (4 layers,
width 256) and a tokenizer trained on the synthetic text, in a temporary directory.

    python benchmarks/rm_grouping.py [--model DIR] [--rankings 8] [--steps 3]

Set OMP_NUM_THREADS to pin the thread count (the figures in the notes used 1).
"""

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch

from trainer import rm
from trainer.snapshot import Message, RankedCompletion, Ranking
from trainer.text import ChatFormat

# fmt: off
WORDS = [
    "the", "a", "blue", "red", "green", "sky", "sea", "tree", "house", "door", "car", "light",
    "dark", "warm", "cold", "quick", "slow", "bright", "answer", "question", "because",
    "therefore", "however", "colour", "shape", "small", "large", "every", "never", "always",
]
# fmt: on


def build_model(directory: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator([" ".join(WORDS), "User: Assistant:"] * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|pad|>"
    )
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=256,
        n_embd=256,
        n_layer=4,
        n_head=4,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def rankings(k: int, count: int, rng: random.Random) -> list[Ranking]:
    def text(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    return [
        Ranking(
            id=f"r{i}",
            prompt_id=f"p{i}",
            context=(Message("user", text(20)),),
            completions=tuple(
                RankedCompletion(id=f"c{j}", text=text(30), rank=j + 1) for j in range(k)
            ),
            labeler="l",
            labeler_group="training",
        )
        for i in range(count)
    ]


def measure(model, optimizer, chat, batch, mode: str, steps: int) -> tuple[int, float]:
    """(sequences forwarded per step, rankings per second) for one optimizer step, the best of
    `steps` (the machine may be shared; the fastest step is the least disturbed)."""
    forwarded, fastest = 0, float("inf")
    for _ in range(steps):
        started = time.perf_counter()
        scores, pairs, _ = rm.ranking_scores(model, chat, batch, 512, "cpu", mode)
        losses, _ = rm.ranking_losses(scores, pairs)
        losses.mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        fastest = min(fastest, time.perf_counter() - started)
        forwarded = len(scores)
    return forwarded, len(batch) / fastest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a causal LM directory (default: built)")
    parser.add_argument("--rankings", type=int, default=8, help="rankings per batch")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per mode (best kept)")
    args = parser.parse_args()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    with tempfile.TemporaryDirectory() as scratch:
        path = args.model or build_model(Path(scratch))
        tokenizer = AutoTokenizer.from_pretrained(path)
        chat = ChatFormat(tokenizer)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, pad_token_id=tokenizer.pad_token_id
        )
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        print(
            f"model {path}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M "
            f"parameters, {args.rankings} rankings per batch, torch threads "
            f"{torch.get_num_threads()}"
        )
        print(
            " K  grouped seq/step  pairwise seq/step  grouped rankings/s  "
            "pairwise rankings/s  speed-up"
        )
        for k in range(4, 10):
            batch = rankings(k, args.rankings, random.Random(k))
            measure(model, optimizer, chat, batch, "grouped", 1)  # warm-up
            grouped = measure(model, optimizer, chat, batch, "grouped", args.steps)
            pairwise = measure(model, optimizer, chat, batch, "pairwise", args.steps)
            print(
                f"{k:2d}  {grouped[0]:16d}  {pairwise[0]:17d}  {grouped[1]:18.2f}  "
                f"{pairwise[1]:19.2f}  {grouped[1] / pairwise[1]:7.1f}x"
            )


if __name__ == "__main__":
    main()
