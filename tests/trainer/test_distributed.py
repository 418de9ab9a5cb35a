"""Two CPU processes (gloo) give the result of one. Select with `-m distributed`; each test
starts four Python processes.

`accelerate launch --cpu --num_processes 2` starts a single process (accelerate runs several
CPU processes only through mpirun), so the test launches with the DDP config the README ships
(`docs/accelerate/ddp.yaml`, a multi-GPU config), which starts the processes through torchrun;
on a machine without GPU the trainer joins them into one gloo group."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainer.conftest import read_metrics

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.distributed

DDP_CONFIG = Path(__file__).parents[2] / "docs" / "accelerate" / "ddp.yaml"
NOT_COMPARED = {"tokens_per_s", "rankings_per_s", "seconds", "peak_memory_mb", "processes"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(stage: str, processes: int, snapshot: Path, model: Path, out: Path, *options: str):
    launcher = [sys.executable, "-m"]
    if processes > 1:
        launcher = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            str(DDP_CONFIG),
            "--num_processes",
            str(processes),
            "--main_process_port",
            str(free_port()),
            "-m",
        ]
    overrides = [arg for option in options for arg in ("--set", option)]
    command = [
        *launcher,
        f"trainer.{stage}",
        "--data",
        str(snapshot),
        "--model",
        str(model),
        "--out",
        str(out),
        *overrides,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def assert_same_results(one: Path, two: Path) -> None:
    expected, got = read_metrics(one), read_metrics(two)
    assert len(got) == len(expected)
    for a, b in zip(expected, got, strict=True):
        assert a.keys() == b.keys()
        for key in a.keys() - NOT_COMPARED:
            if isinstance(a[key], str):
                assert b[key] == a[key]
            else:
                assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-5), key


@pytest.mark.parametrize(
    ("stage", "options"),
    [
        (
            "sft",
            [
                "batch_size=8",
                "max_steps=4",
                "learning_rate=3e-3",
                "dropout=0.0",
                "log_every=1",
                "save_every=0",
            ],
        ),
        (
            "rm",
            ["batch_size=16", "max_steps=4", "learning_rate=1e-3", "log_every=1", "save_every=0"],
        ),
    ],
)
def test_two_processes_give_the_results_of_one(
    stage: str, options: list[str], tmp_path: Path, snapshot: Path, tiny_model: Path
) -> None:
    train(stage, 1, snapshot, tiny_model, tmp_path / "one", *options)
    train(stage, 2, snapshot, tiny_model, tmp_path / "two", *options)
    assert read_metrics(tmp_path / "two")[-1]["processes"] == 2
    assert_same_results(tmp_path / "one", tmp_path / "two")
