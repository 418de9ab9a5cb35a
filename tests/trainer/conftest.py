"""Shared fixtures for the trainer's tests: a tokenizer trained on the fly, tiny models built
from a config (saved and reloaded through `from_pretrained`), and a small snapshot writer that
validates every record against `docs/export-format.schema.json`.

The synthetic world: prompts ask for a colour for a thing; demonstrations answer with one of
three colours; rankings put completions that say "blue" above the others.
"""

import hashlib
import json
import random
from pathlib import Path

import jsonschema
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
# One thread: the tiny models gain nothing from more, and CI machines have two cores.
torch.set_num_threads(1)

from trainer.tiny import build_tiny_model, train_tokenizer  # noqa: E402

SCHEMA = json.loads((Path(__file__).parents[2] / "docs/export-format.schema.json").read_text())
THINGS = [
    "car",
    "door",
    "house",
    "boat",
    "kite",
    "hat",
    "cup",
    "wall",
    "bike",
    "chair",
    "lamp",
    "coat",
    "bag",
    "ball",
    "book",
    "pen",
    "rug",
    "shoe",
    "sock",
    "bowl",
    "tent",
    "vase",
    "fence",
    "roof",
]
COLOURS = ["blue", "red", "green"]
FILLER = ["very", "nice", "bright", "dark", "old", "new", "shiny", "plain", "warm", "cold"]
SKY_PROMPT = "describe the sky"
SKY_ANSWER = "the sky is blue and calm"


def _validator(kind: str) -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{kind}", "$defs": SCHEMA["$defs"]})


VALIDATORS = {kind: _validator(kind) for kind in ("sft", "rm", "ppo", "manifest")}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def demonstration(n: int, prompt: str, answer: str, split: str = "train") -> dict:
    return {
        "id": f"d{n}",
        "prompt_id": f"p{n}",
        "split": split,
        "prompt_kind": "plain",
        "category": "generation",
        "language": "en",
        "author": "u-1",
        "messages": [user(prompt), {"role": "assistant", "content": answer}],
        "labeler": f"l-{n % 3}",
        "origin": "demonstration",
        "time_spent_ms": 1000,
    }


def ranking(
    n: int,
    prompt: str,
    completions: list[tuple[str, int]],
    split: str = "train",
    group: str = "training",
) -> dict:
    return {
        "id": f"r{n}",
        "prompt_id": f"p{n}",
        "split": split,
        "prompt_kind": "plain",
        "category": "generation",
        "language": "en",
        "author": "u-1",
        "context": [user(prompt)],
        "completions": [
            {
                "id": f"r{n}c{i}",
                "text": text,
                "rank": rank,
                "quality": None,
                "flags": [],
                "model": None,
            }
            for i, (text, rank) in enumerate(completions)
        ],
        "labeler": f"l-{n % 3}",
        "labeler_group": group,
        "all_bad": False,
        "time_spent_ms": 2000,
    }


def ppo_prompt(n: int, prompt: str, split: str = "train") -> dict:
    return {
        "prompt_id": f"p{n}",
        "split": split,
        "prompt_kind": "plain",
        "category": "generation",
        "language": "en",
        "author": "u-1",
        "context": [user(prompt)],
    }


def write_snapshot(
    directory: Path, records: dict[str, list[dict]], schema_version: int | None = 1
) -> Path:
    """Writes `{kind}.{split}.jsonl` files and a manifest; `records` maps kind to records (each
    record names its split). Every record is validated against the JSON Schema first."""
    directory.mkdir(parents=True, exist_ok=True)
    counts, sha256 = {}, {}
    for kind, items in records.items():
        for split in ("train", "validation", "test"):
            lines = [r for r in items if r["split"] == split]
            for record in lines:
                VALIDATORS[kind].validate(record)
            name = f"{kind}.{split}.jsonl"
            data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in lines).encode()
            (directory / name).write_bytes(data)
            counts[name], sha256[name] = len(lines), hashlib.sha256(data).hexdigest()
    manifest = {
        "schema_version": schema_version,
        "created_at": "2026-01-01T00:00:00Z",
        "filters": {},
        "split_policy": {"by": "author"},
        "counts": counts,
        "agreement": None,
        "sha256": sha256,
    }
    if schema_version is None:
        del manifest["schema_version"]
    else:
        VALIDATORS["manifest"].validate(manifest)
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return directory


def colour_prompt(thing: str) -> str:
    return f"pick a colour for the {thing}"


def preference_completion(rng: random.Random, blue: bool) -> str:
    """A colour, "blue" or not, after zero to two filler words."""
    words = rng.sample(FILLER, rng.randrange(3))
    return " ".join([*words, "blue" if blue else rng.choice(COLOURS[1:])])


def colour_world(seed: int = 0, rankings_per_split: int = 96) -> dict[str, list[dict]]:
    """Demonstrations (a colour, uniformly, plus the sky answer), rankings with completions
    that say "blue" ranked above the others (K = 3..5, ties among the rest) and PPO prompts."""
    rng = random.Random(seed)
    sft = [demonstration(i, colour_prompt(t), COLOURS[i % 3]) for i, t in enumerate(THINGS * 2)]
    sft += [demonstration(100 + i, SKY_PROMPT, SKY_ANSWER) for i in range(16)]
    sft += [
        demonstration(200 + i, colour_prompt(t), COLOURS[i % 3], "validation")
        for i, t in enumerate(THINGS[:8])
    ]
    rm = []
    for split, offset in (("train", 1000), ("validation", 5000)):
        for i in range(rankings_per_split):
            k = 3 + i % 3
            blue = [rng.random() < 0.5 for _ in range(k)]
            blue[0], blue[1] = True, False  # at least one of each
            items = [(preference_completion(rng, b), 1 if b else 2) for b in blue]
            rng.shuffle(items)
            rm.append(ranking(offset + i, colour_prompt(rng.choice(THINGS)), items, split))
    ppo = [ppo_prompt(3000 + i, colour_prompt(t)) for i, t in enumerate(THINGS[:16])]
    ppo += [ppo_prompt(4000 + i, colour_prompt(t), "validation") for i, t in enumerate(THINGS[16:])]
    return {"sft": sft, "rm": rm, "ppo": ppo}


def _corpus() -> list[str]:
    texts = ["User: ", "Assistant:", "System: ", SKY_PROMPT, SKY_ANSWER]
    texts += [colour_prompt(t) for t in THINGS] + COLOURS + FILLER
    return [" ".join(texts)] * 4 + texts


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE tokenizer trained on the synthetic world's text, with EOS and a pad
    token distinct from it; saved and loaded back through AutoTokenizer."""
    from transformers import AutoTokenizer

    directory = train_tokenizer(_corpus(), tmp_path_factory.mktemp("tokenizer"))
    assert AutoTokenizer.from_pretrained(directory).pad_token == "<|pad|>"
    return directory


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("gpt2"), tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("llama"), tokenizer_dir, kind="llama")


@pytest.fixture(scope="session")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_snapshot(tmp_path_factory.mktemp("snapshot"), colour_world())


def quiet_config(stage: str, **options: object):
    """A stage config for tiny test runs, the options given as command-line overrides."""
    from trainer.config import load_config

    return load_config(stage, overrides=[f"{k}={v}" for k, v in options.items()])


SFT_OPTIONS = {
    "batch_size": 8,
    "epochs": 8,
    "learning_rate": 5e-3,
    "dropout": 0.0,
    "warmup_ratio": 0.1,
    "save_every": 0,
}
RM_OPTIONS = {"batch_size": 16, "epochs": 4, "learning_rate": 2e-3, "save_every": 0}


@pytest.fixture(scope="session")
def sft_policy(tmp_path_factory: pytest.TempPathFactory, snapshot: Path, tiny_model: Path) -> Path:
    """The tiny model fine-tuned on the colour world's demonstrations."""
    from trainer import sft

    out = tmp_path_factory.mktemp("sft")
    return sft.train(quiet_config("sft", **SFT_OPTIONS), snapshot, tiny_model, out)


@pytest.fixture(scope="session")
def reward_model(
    tmp_path_factory: pytest.TempPathFactory, snapshot: Path, sft_policy: Path
) -> Path:
    """A reward model from the SFT policy that prefers completions saying "blue"."""
    from trainer import rm

    out = tmp_path_factory.mktemp("rm")
    return rm.train(quiet_config("rm", **RM_OPTIONS), snapshot, sft_policy, out)


PPO_OPTIONS = {
    "batch_size": 16,
    "minibatch_size": 8,
    "epochs": 12,
    "ppo_epochs": 4,
    "learning_rate": 3e-4,
    "value_learning_rate": 1e-4,
    "max_new_tokens": 6,
    "kl_coef": 0.05,
    "warmup_ratio": 0.0,
    "log_every": 1,
    "save_every": 0,
}


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
