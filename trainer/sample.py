"""Sample jobs: K completions per prompt from one or more model versions, completion j of each
prompt drawn from version j mod (number of versions). Evaluate jobs are sampled the same way,
with K = 2 and the versions A and B (one answer each). Run by `rankery worker` as

    python -m trainer.sample --spec SPEC.json --out RUN_DIR

where SPEC.json is the job spec the app handed out (prompts, model paths, sampling settings).
Writes `RUN_DIR/samples.json` (the result the app imports into the ranking queue) and
`progress.json` (completions done / wanted).
"""

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from trainer.models import load_tokenizer, sample
from trainer.snapshot import Message
from trainer.text import ChatFormat, readable, truncate_left

log = logging.getLogger("trainer")
BATCH_SIZE = 16
EMPTY_RETRIES = 3  # a completion that is empty (EOS at once) is drawn again this many times
EMPTY_ANSWER = "(the model gave no answer)"


def draws(spec: dict[str, Any]) -> tuple[int, list[str]]:
    """Completions per prompt, and the versions that write them in turn."""
    params = spec["params"]
    if spec["kind"] == "evaluate":
        return 2, [str(params["model_version_a_id"]), str(params["model_version_b_id"])]
    return params["k"], [str(v) for v in params["model_version_ids"]]


def generate(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    params, prompts = spec["params"], spec["prompts"]
    k, versions = draws(spec)
    torch.manual_seed(params["seed"])
    texts: dict[tuple[int, int], str] = {}  # (prompt index, slot) -> completion
    wanted, started = len(prompts) * k, time.perf_counter()
    for version in dict.fromkeys(versions):
        slots = [j for j in range(k) if versions[j % len(versions)] == version]
        path = spec["models"][version]
        tokenizer = load_tokenizer(path)
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        chat = ChatFormat(tokenizer)
        limit = context_limit(model) - params["max_new_tokens"]
        jobs = [(i, j) for i in range(len(prompts)) for j in slots]
        for _attempt in range(EMPTY_RETRIES + 1):
            for start in range(0, len(jobs), BATCH_SIZE):
                batch = jobs[start : start + BATCH_SIZE]
                ids = [
                    truncate_left(chat.prompt([Message("user", prompts[i]["text"])]), limit)
                    for i, _ in batch
                ]
                _queries, responses = sample(
                    model,
                    ids,
                    tokenizer,
                    params["max_new_tokens"],
                    params["temperature"],
                    params["top_p"],
                )
                for key, response in zip(batch, responses, strict=True):
                    texts[key] = readable(tokenizer.decode(response, skip_special_tokens=True))
                _write_progress(out, sum(1 for t in texts.values() if t), wanted)
            jobs = [key for key in jobs if not texts[key]]
            if not jobs:
                break
            log.info("%d empty completions from version %s; drawing again", len(jobs), version)
    items = [
        {
            "prompt_id": prompt["id"],
            "completions": [
                {
                    "text": texts[(i, j)] or EMPTY_ANSWER,
                    "model_version_id": int(versions[j % len(versions)]),
                }
                for j in range(k)
            ],
        }
        for i, prompt in enumerate(prompts)
    ]
    _write_progress(out, wanted, wanted)
    log.info("sampled %d completions in %.1f s", wanted, time.perf_counter() - started)
    return {"items": items}


def context_limit(model) -> int:
    config = model.config
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", 2048)


def _write_progress(out: Path, done: int, total: int) -> None:
    temporary = out / "progress.json.tmp"
    temporary.write_text(json.dumps({"step": done, "total_steps": total}))
    temporary.replace(out / "progress.json")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m trainer.sample", description=__doc__)
    parser.add_argument("--spec", required=True, help="the job spec (JSON) from the app")
    parser.add_argument("--out", required=True, help="run directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = generate(json.loads(Path(args.spec).read_text()), out)
    (out / "samples.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
