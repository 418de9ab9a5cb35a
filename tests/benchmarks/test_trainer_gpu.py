"""The trainer benchmark runs end to end on CPU with the tiny preset (figures are not checked:
they belong to the benchmark's output, not to tests)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "trainer_gpu.py"


def test_the_tiny_preset_reports_every_stage_with_mfu_and_peak_memory(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    command = [sys.executable, str(SCRIPT), "--size", "tiny", "--steps", "2", "--warmup", "1"]
    command += ["--peak-tflops", "1", "--json", str(figures)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {run["stage"]: run for run in json.loads(figures.read_text())["runs"]}
    assert set(runs) == {"sft", "rm", "ppo"}
    assert runs["sft"]["mfu"] > 0 and runs["rm"]["mfu"] > 0
    assert 0 < runs["ppo"]["generation_share"] < 1
    assert all(run["peak_memory_mb"] > 0 for run in runs.values())
    assert "MFU" in result.stdout
