"""The trainer's command line, the one place its arguments are defined:

    python -m trainer.sft --data EXPORT_DIR --model MODEL_DIR --out OUT_DIR [options]
    accelerate launch -m trainer.rm --data ... --model ... --out ...
    rankery train ppo --data ... --model SFT_DIR --reward-model RM_DIR --out ...

Options: `--config FILE.yaml`, `--set key=value` (repeatable), `--resume`, and for SFT and PPO
`--reward-model DIR` (the same as `--set reward_model=DIR`).
"""

import argparse
import dataclasses
import importlib
import logging
import sys
from collections.abc import Sequence

from trainer import STAGES
from trainer.config import CONFIGS, ConfigError, load_config
from trainer.snapshot import SnapshotError


def parser(stage: str) -> argparse.ArgumentParser:
    fields = ", ".join(f.name for f in dataclasses.fields(CONFIGS[stage]))
    p = argparse.ArgumentParser(
        prog=f"rankery train {stage}",
        description=f"Train the {stage.upper()} stage on an export snapshot.",
        epilog=f"Options for --set: {fields}.",
    )
    p.add_argument("--data", required=True, help="export snapshot directory")
    p.add_argument("--model", required=True, help="Hugging Face model directory to start from")
    p.add_argument("--out", required=True, help="run directory (model, metrics, checkpoints)")
    p.add_argument("--config", help="YAML file of options")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an option (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    if stage in ("sft", "ppo"):
        p.add_argument("--reward-model", help="reward model directory (required for ppo)")
    return p


def stage_main(stage: str, argv: Sequence[str] | None = None) -> None:
    args = parser(stage).parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # a line per saved file otherwise
    overrides = list(args.overrides)
    if getattr(args, "reward_model", None):
        overrides.append(f"reward_model={args.reward_model}")
    try:
        config = load_config(stage, args.config, overrides)
        module = importlib.import_module(f"trainer.{stage}")
        out = module.train(config, args.data, args.model, args.out, resume=args.resume)
    except (ConfigError, SnapshotError) as exc:
        sys.exit(f"error: {exc}")
    logging.getLogger("trainer").info("%s finished: %s", stage, out)
    _leave_process_group()


def _leave_process_group() -> None:
    """Under a multi-process launch, join the process group's threads before the interpreter
    exits: left to shutdown, gloo's threads can abort a process whose run has finished."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m trainer STAGE ...`"""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in STAGES:
        stages = ",".join(STAGES)
        sys.exit(f"usage: python -m trainer {{{stages}}} --data ... --model ... --out ...")
    stage_main(argv[0], argv[1:])
