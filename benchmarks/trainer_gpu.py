"""Trainer throughput on one device: SFT and reward-model tokens/s and MFU, PPO samples/s with
the share of PPO time spent generating, and the peak memory of every run.

It builds a Llama- or GPT-2-style model from a config (random weights and a tokenizer trained
on the spot: nothing is downloaded), writes a synthetic export snapshot whose sequences all have
the preset's length, and runs each stage through the trainer's own command line
(`python -m trainer.sft|rm|ppo`, the code of `rankery train`), each in a process of its own so
that peak memory (torch.cuda.max_memory_allocated on GPU, peak RSS on CPU) is per stage. The
figures come from the stages' metrics.jsonl, one line per step, leaving out the first
`--warmup` steps.

    python benchmarks/trainer_gpu.py                        # GPU: llama-1b in bf16, ~4 min on H100
    python benchmarks/trainer_gpu.py --size gpt2-124m --json figures.json
    python benchmarks/trainer_gpu.py --size tiny --steps 3  # CPU, under a minute

MFU = achieved model FLOP/s / the device's peak dense bf16 FLOP/s (H100 and H200 SXM: 989
TFLOP/s; other devices: pass --peak-tflops). Model FLOPs per trained token, as in PaLM
(appendix B) and nanoGPT:

    6·N + 12·L·d·T

N: the parameters that take part in matrix multiplications (all of them but the input and
position embeddings, unless those are tied to the output layer); L layers; d hidden width;
T the mean tokens per sequence. The second term is attention (QKᵀ and AV, forward and
backward), counted over the full T×T as is usual, although causal kernels skip about half.
Gradient checkpointing's recomputation is not counted (that would be hardware FLOPs).
"""

import argparse
import dataclasses
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0}  # dense bf16, SXM; the PCIe H100 is lower (756)
# fmt: off
WORDS = [
    "the", "a", "blue", "red", "green", "sky", "sea", "tree", "house", "door", "car", "light",
    "dark", "warm", "cold", "quick", "slow", "bright", "answer", "question", "because",
    "therefore", "however", "colour", "shape", "small", "large", "every", "never", "always",
]
# fmt: on


@dataclasses.dataclass(frozen=True)
class Size:
    kind: str  # "llama" or "gpt2"
    model: dict  # config fields of the architecture
    sequence: int  # tokens per SFT demonstration and per RM completion (prompt included)
    sft_batch: int  # demonstrations per step
    rm_batch: int  # rankings per step, K completions each
    k: int
    ppo_batch: int  # prompts per rollout
    ppo_minibatch: int
    prompt: int  # tokens per PPO prompt
    new_tokens: int  # sampled tokens per PPO response
    grad_accum: int = 1


SIZES = {
    "tiny": Size(
        "gpt2",
        {"n_embd": 64, "n_layer": 2, "n_head": 2, "n_positions": 256},
        sequence=64,
        sft_batch=4,
        rm_batch=2,
        k=4,
        ppo_batch=4,
        ppo_minibatch=2,
        prompt=16,
        new_tokens=8,
    ),
    "gpt2-124m": Size(
        "gpt2",
        {"n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024, "vocab_size": 50304},
        sequence=1024,
        sft_batch=32,
        rm_batch=8,
        k=4,
        ppo_batch=64,
        ppo_minibatch=16,
        prompt=64,
        new_tokens=128,
    ),
    "llama-1b": Size(  # the TinyLlama 1.1B shape
        "llama",
        {
            "hidden_size": 2048,
            "intermediate_size": 5632,
            "num_hidden_layers": 22,
            "num_attention_heads": 32,
            "num_key_value_heads": 4,
            "max_position_embeddings": 2048,
            "vocab_size": 32000,
        },
        sequence=1024,
        sft_batch=16,
        rm_batch=4,
        k=4,
        ppo_batch=64,
        ppo_minibatch=16,
        prompt=64,
        new_tokens=128,
        grad_accum=2,
    ),
}


def build_model(size: Size, directory: Path) -> Path:
    """A tokenizer in which every word of WORDS is one token, and a randomly initialised model
    (its vocabulary may be larger than the tokenizer's, so the output layer has a real size)."""
    from transformers import (
        AutoTokenizer,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
    )

    from trainer.tiny import train_tokenizer

    train_tokenizer([" ".join(WORDS), "User: Assistant: System:"] * 8, directory, vocab_size=400)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    ids = {
        "bos_token_id": tokenizer.eos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    fields = {"vocab_size": len(tokenizer), **size.model, **ids}
    config = GPT2Config(**fields) if size.kind == "gpt2" else LlamaConfig(**fields)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):  # initialising a 1B model on CPU takes minutes
        model = (GPT2LMHeadModel if size.kind == "gpt2" else LlamaForCausalLM)(config)
    model.save_pretrained(directory)
    return directory


def write_snapshot(size: Size, directory: Path, tokenizer, steps: int) -> Path:
    """SFT demonstrations, K-wise rankings and PPO prompts, each sequence `size.sequence`
    tokens long in the trainer's chat format, and enough of them for `steps` steps."""
    from trainer.snapshot import Message
    from trainer.text import ChatFormat

    chat = ChatFormat(tokenizer)
    rng = random.Random(0)

    def words(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    def answer(prompt: str) -> str:
        """Words enough that prompt + answer in the chat format is size.sequence tokens."""
        context = [Message("user", prompt)]
        text = words(size.sequence - size.prompt)
        while len(chat.completion(context, text)) > size.sequence:
            text = text.rsplit(" ", 1)[0]
        return text

    common = {"split": "train", "prompt_kind": "plain", "category": "generation"}
    common |= {"language": "en", "author": "u-1"}
    sft, rm, ppo = [], [], []
    for i in range(size.sft_batch * steps):
        prompt = words(size.prompt)
        turns = [{"role": "user", "content": prompt}]
        turns.append({"role": "assistant", "content": answer(prompt)})
        sft.append(
            {"id": f"d{i}", "prompt_id": f"p{i}", **common, "messages": turns, "labeler": "l-1"}
            | {"origin": "demonstration", "time_spent_ms": 1000}
        )
    for i in range(size.rm_batch * steps):
        prompt = words(size.prompt)
        completions = [
            {"id": f"r{i}c{j}", "text": answer(prompt), "rank": j + 1, "quality": None}
            | {"flags": [], "model": None}
            for j in range(size.k)
        ]
        rm.append(
            {"id": f"r{i}", "prompt_id": f"q{i}", **common, "labeler": "l-1"}
            | {"context": [{"role": "user", "content": prompt}], "completions": completions}
            | {"labeler_group": "training", "all_bad": False, "time_spent_ms": 2000}
        )
    for i in range(size.ppo_batch * steps):
        context = [{"role": "user", "content": words(size.prompt)}]
        ppo.append({"prompt_id": f"x{i}", **common, "context": context})
    directory.mkdir(parents=True, exist_ok=True)
    counts, sha256 = {}, {}
    for kind, records in (("sft", sft), ("rm", rm), ("ppo", ppo)):
        data = "".join(json.dumps(r) + "\n" for r in records).encode()
        (directory / f"{kind}.train.jsonl").write_bytes(data)
        counts[f"{kind}.train.jsonl"] = len(records)
        sha256[f"{kind}.train.jsonl"] = hashlib.sha256(data).hexdigest()
    manifest = {"schema_version": 1, "created_at": "2026-01-01T00:00:00Z", "filters": {}}
    manifest |= {"split_policy": {"by": "author"}, "counts": counts, "sha256": sha256}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return directory


def flops_per_token(model_dir: Path, tokens_per_sequence: float, scalar: bool) -> float:
    """6·N + 12·L·d·T for one trained token (see the module docstring)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(model_dir, num_labels=1)
    cls = AutoModelForSequenceClassification if scalar else AutoModelForCausalLM
    with torch.device("meta"):
        model = cls.from_config(config)
    output = model.get_output_embeddings()
    tied = output is not None and output.weight is model.get_input_embeddings().weight
    skipped = set() if tied else {id(model.get_input_embeddings().weight)}
    for name, module in model.named_modules():
        if name.endswith(("wpe", "position_embeddings")):  # learned positions: no matmul
            skipped.add(id(module.weight))
    n = sum(p.numel() for p in model.parameters() if id(p) not in skipped)
    layers = config.num_hidden_layers
    return 6 * n + 12 * layers * config.hidden_size * tokens_per_sequence


def run_stage(stage: str, args: list[str], out: Path) -> list[dict]:
    """Runs `python -m trainer.STAGE` and returns its metrics lines."""
    command = [sys.executable, "-m", f"trainer.{stage}", *args, "--out", str(out)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{stage} failed:\n{result.stderr[-4000:]}")
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def steady(metrics: list[dict], key: str, warmup: int) -> float:
    """The mean of a per-step figure after the warm-up steps."""
    values = [m[key] for m in metrics if key in m and m["step"] > warmup]
    return sum(values) / len(values)


def peak_tflops(given: float | None) -> tuple[str, float | None]:
    if not torch.cuda.is_available():
        return "cpu", given
    name = torch.cuda.get_device_name()
    if given is not None:
        return name, given
    return name, next((peak for key, peak in PEAK_TFLOPS.items() if key in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "llama-1b" if torch.cuda.is_available() else "tiny"
    parser.add_argument("--size", choices=sorted(SIZES), default=default)
    parser.add_argument("--steps", type=int, default=12, help="SFT and RM steps (PPO: half)")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out")
    parser.add_argument("--peak-tflops", type=float, help="device peak for MFU (default: known)")
    parser.add_argument("--stages", default="sft,rm,ppo", help="comma-separated")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", type=Path, help="keep models and runs here (default: temp)")
    args = parser.parse_args()
    if args.steps <= args.warmup:
        parser.error("--steps must exceed --warmup")
    size = SIZES[args.size]
    device, peak = peak_tflops(args.peak_tflops)
    stages = args.stages.split(",")

    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        base = build_model(size, root / "base")
        tokenizer = AutoTokenizer.from_pretrained(base)
        snapshot = write_snapshot(size, root / "snapshot", tokenizer, args.steps)
        common = ["--data", str(snapshot), "--set", "log_every=1", "--set", "save_every=0"]
        common += ["--set", "warmup_ratio=0", "--set", f"max_length={size.sequence}"]
        common += ["--set", f"grad_accum={size.grad_accum}"]
        rows = []
        if "sft" in stages:
            options = ["--set", f"batch_size={size.sft_batch}", "--set", "epochs=1"]
            metrics = run_stage("sft", ["--model", str(base), *common, *options], root / "sft")
            tokens_per_s = steady(metrics, "tokens_per_s", args.warmup)
            flops = flops_per_token(base, size.sequence, scalar=False) * tokens_per_s
            rows.append({"stage": "sft", "tokens_per_s": tokens_per_s, "tflops": flops / 1e12})
            rows[-1]["peak_memory_mb"] = metrics[-1]["peak_memory_mb"]
        if "rm" in stages or "ppo" in stages:
            options = ["--set", f"batch_size={size.rm_batch}", "--set", "epochs=1"]
            metrics = run_stage("rm", ["--model", str(base), *common, *options], root / "rm")
            if "rm" in stages:
                tokens_per_s = steady(metrics, "tokens_per_s", args.warmup)
                flops = flops_per_token(base, size.sequence, scalar=True) * tokens_per_s
                rows.append({"stage": "rm", "tokens_per_s": tokens_per_s, "tflops": flops / 1e12})
                rows[-1]["rankings_per_s"] = steady(metrics, "rankings_per_s", args.warmup)
                rows[-1]["peak_memory_mb"] = metrics[-1]["peak_memory_mb"]
        if "ppo" in stages:
            options = ["--reward-model", str(root / "rm" / "model")]
            for key, value in (
                ("batch_size", size.ppo_batch),
                ("minibatch_size", size.ppo_minibatch),
                ("max_new_tokens", size.new_tokens),
                ("max_steps", max(args.warmup + 1, args.steps // 2)),
                ("epochs", 1),
                ("grad_accum", 1),
            ):
                options += ["--set", f"{key}={value}"]
            metrics = run_stage("ppo", ["--model", str(base), *common, *options], root / "ppo")
            rows.append(
                {
                    "stage": "ppo",
                    "samples_per_s": steady(metrics, "samples_per_s", args.warmup),
                    "generation_share": steady(metrics, "generation_share", args.warmup),
                    "response_length": steady(metrics, "response_length", args.warmup),
                    "peak_memory_mb": metrics[-1]["peak_memory_mb"],
                }
            )
    for row in rows:
        if "tflops" in row and peak is not None:
            row["mfu"] = row["tflops"] / peak
    report(args.size, size, device, peak, rows)
    if args.json:
        figures = {"size": args.size, "device": device, "peak_tflops": peak, "runs": rows}
        figures["config"] = dataclasses.asdict(size)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def report(name: str, size: Size, device: str, peak: float | None, rows: list[dict]) -> None:
    print(f"device {device}, size {name} ({size.kind}), torch {torch.__version__}")
    print(f"peak {peak} TFLOP/s bf16 dense" if peak else "MFU: no known peak (--peak-tflops)")
    print(
        f"sequences of {size.sequence} tokens; SFT {size.sft_batch} per step, RM "
        f"{size.rm_batch} rankings of K = {size.k}; PPO {size.ppo_batch} prompts of "
        f"{size.prompt} tokens, {size.new_tokens} new tokens"
    )
    print(f"{'stage':5}  {'tokens/s':>10}  {'TFLOP/s':>8}  {'MFU':>6}  {'samples/s':>9}  ", end="")
    print(f"{'generating':>10}  {'peak MB':>9}")
    for row in rows:
        tokens = f"{row['tokens_per_s']:10.0f}" if "tokens_per_s" in row else " " * 10
        tflops = f"{row['tflops']:8.3g}" if "tflops" in row else " " * 8
        mfu = f"{row['mfu']:6.1%}" if "mfu" in row else " " * 6
        samples = row.get("samples_per_s", row.get("rankings_per_s"))
        samples_text = f"{samples:9.2f}" if samples is not None else " " * 9
        share = f"{row['generation_share']:10.1%}" if "generation_share" in row else " " * 10
        print(f"{row['stage']:5}  {tokens}  {tflops}  {mfu}  {samples_text}  {share}  ", end="")
        print(f"{row['peak_memory_mb']:9.0f}")
    print("samples/s: rankings per second for RM, prompts answered and trained on for PPO")


if __name__ == "__main__":
    main()
