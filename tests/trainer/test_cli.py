import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from app.cli import main
from tests.trainer.conftest import read_metrics, write_snapshot


def test_the_trainer_and_the_cli_import_without_torch() -> None:
    code = (
        "import sys, app.cli, trainer, trainer.cli, trainer.config, trainer.snapshot; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_rankery_train_lists_the_three_stages() -> None:
    result = CliRunner().invoke(main, ["train", "--help"])
    assert result.exit_code == 0
    assert all(stage in result.output for stage in ("sft", "rm", "ppo"))


def test_a_stage_help_shows_the_trainer_options(capsys) -> None:
    result = CliRunner().invoke(main, ["train", "rm", "--help"])
    assert result.exit_code == 0
    assert "--data" in capsys.readouterr().out + result.output


def test_rankery_train_rm_trains_on_a_snapshot(
    tmp_path: Path, snapshot: Path, tiny_model: Path
) -> None:
    args = ["train", "rm", "--data", str(snapshot), "--model", str(tiny_model)]
    args += ["--out", str(tmp_path), "--set", "batch_size=16", "--set", "max_steps=1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "model" / "config.json").exists()
    assert read_metrics(tmp_path)[0]["step"] == 1


def test_options_come_from_the_config_file_then_overrides(
    tmp_path: Path, snapshot: Path, tiny_model: Path
) -> None:
    config = tmp_path / "rm.yaml"
    config.write_text("batch_size: 16\nmax_steps: 3\nlog_every: 1\n")
    command = [
        sys.executable,
        "-m",
        "trainer.rm",
        "--data",
        str(snapshot),
        "--model",
        str(tiny_model),
        "--out",
        str(tmp_path / "out"),
        "--config",
        str(config),
        "--set",
        "max_steps=2",
    ]
    subprocess.run(command, check=True, capture_output=True)
    assert [m["step"] for m in read_metrics(tmp_path / "out") if "loss" in m] == [1, 2]


def test_an_unknown_schema_version_stops_the_command_with_a_clear_message(
    tmp_path: Path, tiny_model: Path
) -> None:
    snapshot = write_snapshot(tmp_path / "snapshot", {"sft": []}, schema_version=7)
    command = [
        sys.executable,
        "-m",
        "trainer.sft",
        "--data",
        str(snapshot),
        "--model",
        str(tiny_model),
        "--out",
        str(tmp_path / "out"),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1
    assert "schema_version 7" in result.stderr
    assert "Traceback" not in result.stderr
