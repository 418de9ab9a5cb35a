"""What every stage's run shares: the accelerator, the output directory, batches and their
split over processes, metrics (JSON lines), progress, checkpoints and resuming.

A run directory holds `config.yaml` (the resolved configuration), `metrics.jsonl`,
`checkpoints/step-N/` (model, optimizer, scheduler and RNG state through `accelerate`, plus
`trainer_state.json` with the data position), `progress.json` (step and total steps, rewritten
about once a second, which `rankery worker` reports) and, at the end, the model in `model/`.
"""

import json
import logging
import os
import random
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed

from trainer.config import ConfigError, RunConfig, save_config
from trainer.snapshot import Snapshot
from trainer.tensors import warmup_cosine

log = logging.getLogger("trainer")


class Run:
    def __init__(
        self,
        stage: str,
        config: RunConfig,
        data: str | Path,
        model: str | Path,
        out: str | Path,
        resume: bool = False,
    ) -> None:
        self.stage, self.config = stage, config
        self.data, self.model_path, self.out = Path(data), Path(model), Path(out)
        on_gpu = torch.cuda.is_available()
        # Without a GPU, processes started by torchrun / `accelerate launch --multi_gpu` join
        # one gloo group only when the accelerator is told it runs on CPU.
        self.accelerator = Accelerator(
            cpu=not on_gpu, mixed_precision="bf16" if config.bf16 and on_gpu else "no"
        )
        self.rank = self.accelerator.process_index
        self.world = self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process
        self.device = self.accelerator.device
        set_seed(config.seed)
        self.snapshot = Snapshot(self.data)
        self.checkpoints = self.out / "checkpoints"
        self.resume = resume
        self.started = time.perf_counter()
        self._progress = None
        self._step, self._total_steps, self._progress_written = 0, 0, 0.0
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(config, self.out / "config.yaml", **self._paths())
            if not resume:
                (self.out / "metrics.jsonl").unlink(missing_ok=True)
        self.accelerator.wait_for_everyone()

    def _paths(self) -> dict[str, str]:
        return {"stage": self.stage, "data": str(self.data), "model": str(self.model_path)}

    # Batches -------------------------------------------------------------------------------

    def epoch_batches(self, n_items: int, batch_size: int, epoch: int) -> list[list[int]]:
        """The global batches of one epoch: a permutation seeded by (seed, epoch), so the data
        position is just the step number. An incomplete last batch is dropped."""
        order = list(range(n_items))
        random.Random(self.config.seed * 100_003 + epoch).shuffle(order)
        return [order[i : i + batch_size] for i in range(0, n_items - batch_size + 1, batch_size)]

    def check_batch_size(self, batch_size: int, n_items: int, what: str) -> None:
        parts = self.config.grad_accum * self.world
        if batch_size % parts:
            raise ConfigError(
                f"batch size {batch_size} does not split into grad_accum × processes = {parts}"
            )
        if n_items < batch_size:
            raise ConfigError(f"{n_items} {what} in the training split, fewer than one batch")

    def micro_batches(self, batch: list[int]) -> list[list[int]]:
        """This process's share of each micro-batch of a global batch."""
        size = len(batch) // self.config.grad_accum
        per_process = size // self.world
        return [
            batch[start + self.rank * per_process : start + (self.rank + 1) * per_process]
            for start in range(0, len(batch), size)
        ]

    def shard(self, items: list) -> list:
        """This process's share of a list that is not batched for training (evaluation)."""
        return items[self.rank :: self.world]

    def total(self, value: float | torch.Tensor) -> float:
        """The sum of a number over all processes."""
        tensor = torch.as_tensor(value, dtype=torch.float64, device=self.device)
        return float(self.accelerator.reduce(tensor, reduction="sum"))

    def step_counts(self, examples: int) -> tuple[int, int]:
        """(optimizer steps per epoch, total steps) for this many training examples: whole
        batches only, config.epochs of them, capped by config.max_steps."""
        steps_per_epoch = examples // self.config.batch_size
        total_steps = self.config.epochs * steps_per_epoch
        if self.config.max_steps is not None:
            total_steps = min(total_steps, self.config.max_steps)
        return steps_per_epoch, total_steps

    def schedule(self, optimizer: torch.optim.Optimizer, total_steps: int):
        warmup = max(1, round(self.config.warmup_ratio * total_steps))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: warmup_cosine(step, total_steps, warmup, self.config.min_lr_ratio),
        )
        self.accelerator.register_for_checkpointing(scheduler)
        return scheduler

    # Metrics and progress ------------------------------------------------------------------

    def log_metrics(self, step: int, total_steps: int, metrics: dict[str, Any]) -> None:
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        if not self.is_main:
            return
        with (self.out / "metrics.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        summary = " ".join(f"{k}={_short(v)}" for k, v in record.items() if k != "step")
        if self._progress is not None:
            self._progress.set_postfix_str(summary, refresh=False)
        else:
            log.info("%s step %d/%d %s", self.stage, step, total_steps, summary)

    def progress(self, start: int, total_steps: int):
        """A progress bar on a terminal (main process); otherwise the log lines suffice."""
        self._step, self._total_steps = start, total_steps
        self._write_progress(force=True)
        if self.is_main and sys.stderr.isatty():
            from tqdm import tqdm

            self._progress = tqdm(total=total_steps, initial=start, desc=self.stage)
        return self._progress

    def advance(self) -> None:
        self._step += 1
        self._write_progress(force=self._step == self._total_steps)
        if self._progress is not None:
            self._progress.update(1)

    def _write_progress(self, force: bool) -> None:
        now = time.monotonic()
        if not self.is_main or (not force and now - self._progress_written < 1.0):
            return
        self._progress_written = now
        progress = {"step": self._step, "total_steps": self._total_steps}
        temporary = self.out / "progress.json.tmp"
        temporary.write_text(json.dumps(progress))
        temporary.replace(self.out / "progress.json")  # readers never see half a file

    def peak_memory_mb(self) -> float:
        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    # Checkpoints ---------------------------------------------------------------------------

    def checkpoint_due(self, step: int, epoch_end: bool) -> bool:
        every = self.config.save_every
        if step == self.config.stop_after_steps:
            return True
        return epoch_end if every is None else every > 0 and step % every == 0

    def save_checkpoint(self, step: int, state: dict[str, Any]) -> None:
        """Model(s), optimizer(s), scheduler and every process's RNG, plus the stage's state
        (the data position is the step)."""
        directory = self.checkpoints / f"step-{step:08d}"
        self.accelerator.save_state(str(directory))
        if self.is_main:
            save_config(self.config, directory / "config.yaml", **self._paths())
            # Written last, and whole or not at all: resuming takes it as the sign that the
            # checkpoint is complete.
            partial = directory / "trainer_state.json.partial"
            partial.write_text(json.dumps({"step": step, **state}, indent=2))
            os.replace(partial, directory / "trainer_state.json")
            for old in sorted(self.checkpoints.glob("step-*"))[: -self.config.keep_checkpoints]:
                shutil.rmtree(old)
        self.accelerator.wait_for_everyone()

    def load_checkpoint(self) -> dict[str, Any] | None:
        """Restores the newest checkpoint when resuming; returns its state, or None."""
        if not self.resume:
            return None
        found = sorted(self.checkpoints.glob("step-*/trainer_state.json"))
        if not found:
            log.warning("no checkpoint in %s: starting from the beginning", self.checkpoints)
            return None
        directory = found[-1].parent
        self.accelerator.load_state(str(directory))
        state = json.loads(found[-1].read_text())
        if self.is_main:
            _truncate_metrics(self.out / "metrics.jsonl", state["step"])
        log.info("resumed from %s", directory)
        return state

    def save_model(self, model: torch.nn.Module, tokenizer, directory: Path) -> Path:
        """Saves the model in Hugging Face format (from_pretrained loads it back). Under FSDP
        every process holds a shard, so all of them take part in gathering the weights."""
        from trainer.models import save_model

        self.accelerator.wait_for_everyone()
        state_dict = None
        if self.accelerator.distributed_type == DistributedType.FSDP:
            state_dict = self.accelerator.get_state_dict(model)
        if self.is_main:
            save_model(self.accelerator.unwrap_model(model), tokenizer, directory, state_dict)
        self.accelerator.wait_for_everyone()
        return directory

    def finish(self, model: torch.nn.Module, tokenizer, step: int) -> Path:
        """Logs the run's totals and saves the final model to OUT/model."""
        totals = {"peak_memory_mb": self.peak_memory_mb(), "seconds": self.elapsed()}
        self.log_metrics(step, step, {**totals, "processes": self.world})
        if self._progress is not None:
            self._progress.close()
        return self.save_model(model, tokenizer, self.out / "model")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drops the lines an interrupted run logged after its last checkpoint."""
    if path.exists():
        lines = path.read_text().splitlines()
        kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
        path.write_text("".join(line + "\n" for line in kept))


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item()
    return value


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
