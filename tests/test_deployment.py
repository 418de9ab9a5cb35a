"""docker-compose.yml and the Dockerfile, checked by structure (docker is not run here): every
service command is a real `rankery` command with real options, the worker gets a GPU, the
shared artifacts volume at the app's DATA_DIR, a token from the environment, and an image
built with the trainer."""

import tomllib
from pathlib import Path

import click
import pytest

yaml = pytest.importorskip("yaml")

from app.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def resolve(argv: list[str]) -> tuple[click.Command, list[str]]:
    """The click command an argv names, and the arguments left for it."""
    assert argv[0] == "rankery"
    command: click.Command = main
    rest = argv[1:]
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"rankery has no command {rest[0]!r}"
        command, rest = sub, rest[1:]
    return command, rest


@pytest.fixture(autouse=True)
def worker_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """What compose puts in the worker's environment."""
    monkeypatch.setenv("RANKERY_WORKER_TOKEN", "rk_from_the_environment")


@pytest.mark.parametrize("name", [n for n, s in SERVICES.items() if "command" in s])
def test_each_service_runs_a_real_rankery_command_with_real_options(name: str) -> None:
    command, rest = resolve(SERVICES[name]["command"])
    context = command.make_context(f"rankery {command.name}", list(rest), resilient_parsing=False)
    assert context.params is not None


def test_the_worker_reaches_the_web_service_on_its_port() -> None:
    command, rest = resolve(SERVICES["worker"]["command"])
    params = command.make_context("worker", list(rest)).params
    _, web_rest = resolve(SERVICES["web"]["command"])
    web = resolve(SERVICES["web"]["command"])[0].make_context("serve", list(web_rest)).params
    assert params["api_url"] == f"http://web:{web['port']}"
    assert "web" in SERVICES["worker"]["depends_on"]


def test_the_worker_reserves_the_nvidia_gpus() -> None:
    [device] = SERVICES["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def test_the_worker_shares_the_artifacts_volume_at_the_apps_data_dir() -> None:
    data_dir = SERVICES["web"]["environment"]["RANKERY_DATA_DIR"]
    assert f"artifacts:{data_dir}" in SERVICES["web"]["volumes"]
    assert f"artifacts:{data_dir}" in SERVICES["worker"]["volumes"]
    assert "artifacts" in COMPOSE["volumes"]


def test_the_worker_token_comes_from_the_environment() -> None:
    token = SERVICES["worker"]["environment"]["RANKERY_WORKER_TOKEN"]
    assert token.startswith("${RANKERY_WORKER_TOKEN")
    [option] = [p for p in resolve(["rankery", "worker"])[0].params if p.name == "token"]
    assert option.envvar == "RANKERY_WORKER_TOKEN"


def test_the_worker_image_is_built_with_the_trainer() -> None:
    build = SERVICES["worker"]["build"]
    extras = build["args"]["EXTRAS"].split(",")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "train" in extras and set(extras) <= set(declared["optional-dependencies"])
    assert (ROOT / build["context"] / "Dockerfile").is_file()
    assert "ARG EXTRAS=" in DOCKERFILE and 'pip install --no-cache-dir ".[${EXTRAS}]"' in DOCKERFILE
    for package in ("app", "trainer", "migrations", "templates", "static"):
        assert f"COPY {package} {package}" in DOCKERFILE
