"""Per-stage configuration: dataclasses with defaults from the InstructGPT paper, read from an
optional YAML file and then `key=value` overrides (values are parsed as YAML: `3`, `1e-5`,
`true`, `null`). The resolved configuration is saved with every run and checkpoint.
"""

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A configuration file or override that does not fit the stage; the message says why."""


@dataclass
class RunConfig:
    """What every stage shares. Batch sizes count over all processes, so a run gives the same
    result on one GPU or eight (given the same `grad_accum`)."""

    seed: int = 0
    learning_rate: float = 1e-5
    batch_size: int = 32  # examples per optimizer step, over all processes
    grad_accum: int = 1  # micro-batches per optimizer step (SFT and RM)
    epochs: int = 1
    max_steps: int | None = None  # caps the optimizer steps of the schedule
    warmup_ratio: float = 0.03  # share of steps with linear warm-up, then cosine decay
    min_lr_ratio: float = 0.0  # the cosine decays to learning_rate * min_lr_ratio
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 1024  # tokens; longer sequences are cut from the left (context) side
    dropout: float | None = None  # sets every dropout probability of the model when given
    bf16: bool = True  # bf16 autocast on GPU; CPU runs stay in float32
    gradient_checkpointing: bool = False
    lora_rank: int = 0  # 0 trains every weight; > 0 trains LoRA adapters through peft
    lora_alpha: int = 16
    log_every: int = 10  # optimizer steps between metrics lines
    save_every: int | None = None  # steps between checkpoints; None: each epoch's end; 0: none
    keep_checkpoints: int = 2
    stop_after_steps: int | None = None  # stop (checkpoint first) as if interrupted; for tests


@dataclass
class SftConfig(RunConfig):
    learning_rate: float = 1e-5
    epochs: int = 16  # the paper trains 16 epochs and selects the checkpoint by RM score
    dropout: float | None = 0.2  # the paper's residual dropout
    reward_model: str | None = None  # selects the best epoch by mean RM score when given
    selection_prompts: int = 64  # validation prompts sampled for the RM score
    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0


@dataclass
class RmConfig(RunConfig):
    learning_rate: float = 9e-6
    batch_size: int = 64  # rankings per optimizer step
    epochs: int = 1  # the RM overfits after about one epoch
    dropout: float | None = 0.0
    mode: Literal["grouped", "pairwise"] = "grouped"


@dataclass
class PpoConfig(RunConfig):
    learning_rate: float = 1e-6
    reward_model: str | None = None  # required
    batch_size: int = 64  # prompts per rollout, over all processes
    minibatch_size: int = 16  # rollouts per PPO update step, over all processes
    ppo_epochs: int = 4  # passes over each rollout batch
    epochs: int = 8  # passes over the prompts (the paper: 256k episodes on 31k prompts)
    dropout: float | None = 0.0  # dropout off in policy and critic during PPO
    value_learning_rate: float = 5e-6
    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    kl_coef: float = 0.02  # β; the start value when adaptive_kl is true
    adaptive_kl: bool = False
    target_kl: float = 6.0  # nats per response, for the adaptive controller
    kl_horizon: int = 10_000
    gamma: float = 1.0
    lam: float = 0.95
    clip_range: float = 0.2
    value_clip_range: float = 0.2
    max_ratio: float = 10.0  # skip a minibatch whose mean ratio exceeds this
    missing_eos_penalty: float | None = None  # subtracted from the score without EOS
    reward_clip: float | None = None  # clip the RM score to ±this
    ptx_coef: float = 0.0  # γ_ptx; 0 is plain PPO
    ptx_batch_size: int = 8  # demonstrations per update step, over all processes


CONFIGS: dict[str, type[RunConfig]] = {"sft": SftConfig, "rm": RmConfig, "ppo": PpoConfig}


def load_config(
    stage: str, file: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> RunConfig:
    """The stage's configuration: defaults, then the YAML file, then `key=value` overrides."""
    cls = CONFIGS[stage]
    values: dict[str, Any] = {}
    if file is not None:
        loaded = yaml.safe_load(Path(file).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: expected a mapping of option names to values")
        values.update(loaded)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value")
        values[key.strip()] = yaml.safe_load(text)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown {stage} option(s): {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
        )
    return cls(**{key: _coerce(key, value, hints[key]) for key, value in values.items()})


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Checks a value against the field's type; ints are accepted where floats are expected."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return None
        if typing.get_origin(option) is Literal and value in typing.get_args(option):
            return value
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if option is float and isinstance(value, str):  # YAML reads 1e-5 as a string
            try:
                return float(value)
            except ValueError:
                pass
        if option in (int, str, bool) and type(value) is option:
            return value
    raise ConfigError(f"option {key}: {value!r} is not a valid {_describe(hint)}")


def _describe(hint: Any) -> str:
    return str(hint).replace("typing.", "")


def save_config(config: RunConfig, path: Path, **paths: str | None) -> None:
    """Writes the resolved configuration (and the run's paths) as YAML."""
    data = {"stage_config": dataclasses.asdict(config), "paths": paths}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
