"""The `rankery` command line, run as a user would run it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from app.db import Database
from app.models import Completion, Item, ModelVersion, Prompt, User
from tests.factories import make_user

ROOT = Path(__file__).resolve().parents[1]


def rankery(
    database_url: str, *args: str, stdin: str = "", data_dir: Path | None = None
) -> subprocess.CompletedProcess:
    env = {"RANKERY_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    if data_dir is None and database_url.startswith("sqlite:///"):  # beside the database
        data_dir = Path(database_url.removeprefix("sqlite:///")).parent / "var"
    if data_dir is not None:
        env["RANKERY_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )


@pytest.fixture
def empty_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def line(k: int, instruction: str = "Why is the sea salty?") -> str:
    completions = [{"text": f"answer {i}", "model": "m", "sampling": {"t": 1}} for i in range(k)]
    return json.dumps({"prompt": {"instruction": instruction}, "completions": completions})


def test_every_command_has_help(empty_url: str) -> None:
    for command in (
        ["migrate"],
        ["create-user"],
        ["serve"],
        ["demo"],
        ["import", "completions"],
        ["import", "oasst"],
        ["import", "pairs"],
        ["check", "splits"],
        ["export"],
        ["backup"],
        ["restore"],
    ):
        result = rankery(empty_url, *command, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout


def test_migrate_then_demo_prints_the_logins(empty_url: str) -> None:
    assert rankery(empty_url, "migrate").returncode == 0
    result = rankery(empty_url, "demo")
    assert result.returncode == 0
    assert "admin" in result.stdout and "alice" in result.stdout and "password" in result.stdout
    with Database(empty_url).session() as session:
        assert session.scalar(select(func.count()).select_from(Item).where(Item.kind == "ranking"))


def test_demo_registers_a_tiny_base_model_that_loads_back(empty_url: str) -> None:
    transformers = pytest.importorskip("transformers")
    rankery(empty_url, "migrate")
    result = rankery(empty_url, "demo")
    assert "tiny-demo-base" in result.stdout, result.stdout + result.stderr
    with Database(empty_url).session() as session:
        base = session.scalars(select(ModelVersion).where(ModelVersion.kind == "base")).one()
    model = transformers.AutoModelForCausalLM.from_pretrained(base.artifact_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(base.artifact_path)
    assert model.config.vocab_size == len(tokenizer) and tokenizer.pad_token != tokenizer.eos_token


def test_demo_refuses_a_database_that_is_not_empty(empty_url: str) -> None:
    rankery(empty_url, "migrate")
    rankery(empty_url, "demo")
    result = rankery(empty_url, "demo")
    assert result.returncode != 0 and "not empty" in result.stderr


def test_create_user_reads_the_password_from_stdin(empty_url: str) -> None:
    rankery(empty_url, "migrate")
    result = rankery(
        empty_url,
        "create-user",
        "erin",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a-long-password\n",
    )
    assert result.returncode == 0, result.stderr
    with Database(empty_url).session() as session:
        assert session.scalar(select(User.role).where(User.username == "erin")) == "admin"


def test_import_completions_from_jsonl(empty_url: str, tmp_path: Path) -> None:
    rankery(empty_url, "migrate")
    rankery(empty_url, "demo")
    path = tmp_path / "items.jsonl"
    path.write_text(line(4) + "\n\n" + line(5, instruction="Why is the sky blue at noon?") + "\n")
    result = rankery(empty_url, "import", "completions", str(path), "--project", "1")
    assert result.returncode == 0, result.stderr
    assert "Imported 2 ranking items" in result.stdout


def test_an_import_reports_the_duplicates_it_dropped(empty_url: str, tmp_path: Path) -> None:
    rankery(empty_url, "migrate")
    rankery(empty_url, "demo")
    path = tmp_path / "items.jsonl"
    path.write_text(line(4) + "\n\n" + line(5) + "\n")
    result = rankery(empty_url, "import", "completions", str(path), "--project", "1")
    assert "Imported 1 ranking items" in result.stdout
    assert "line 3: duplicate of line 1" in result.stdout


def test_a_bad_import_names_the_lines_and_imports_nothing(empty_url: str, tmp_path: Path) -> None:
    rankery(empty_url, "migrate")
    rankery(empty_url, "demo")
    with Database(empty_url).session() as session:
        before = session.scalar(select(func.count()).select_from(Completion))
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join([line(4), "{not json", line(12), line(4, instruction="")]))

    result = rankery(empty_url, "import", "completions", str(path))

    assert result.returncode != 0
    assert "Nothing was imported" in result.stderr
    assert "line 2: not valid JSON" in result.stderr
    assert "line 3:" in result.stderr and "line 4:" in result.stderr
    with Database(empty_url).session() as session:
        assert session.scalar(select(func.count()).select_from(Completion)) == before


def test_jobs_are_queued_listed_and_cancelled_from_the_command_line(
    empty_url: str, tmp_path: Path
) -> None:
    from tests.factories import make_base_version, make_snapshot_dir

    rankery(empty_url, "migrate")
    with Database(empty_url).session() as session:
        base = make_base_version(session, tmp_path / "base")
    snapshot = make_snapshot_dir(tmp_path / "snap")

    created = rankery(empty_url, "jobs", "create", "rm", "--set", f"snapshot={snapshot}",
                      "--set", f"model_version_id={base.id}", "--set", "epochs=2")  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "Queued job 1 (rm)" in created.stdout
    bad = rankery(empty_url, "jobs", "create", "rm", "--set", "model_version_id=99")
    assert bad.returncode != 0 and "snapshot: Field required" in bad.stderr
    assert "#1     rm      queued" in rankery(empty_url, "jobs", "list").stdout
    assert "cancelled" in rankery(empty_url, "jobs", "cancel", "1").stdout


def test_an_evaluate_job_is_queued_from_the_command_line(empty_url: str, tmp_path: Path) -> None:
    from tests.factories import make_policy_version, make_test_project

    rankery(empty_url, "migrate")
    with Database(empty_url).session() as session:
        project = make_test_project(session, prompts=1)
        a, b = (make_policy_version(session, tmp_path / name) for name in ("a", "b"))
        ids = project.id, a.id, b.id

    def create(*params: str) -> subprocess.CompletedProcess:
        sets = [arg for param in params for arg in ("--set", param)]
        return rankery(empty_url, "jobs", "create", "evaluate", *sets)

    created = create(f"project_id={ids[0]}", f"model_version_a_id={ids[1]}",
                     f"model_version_b_id={ids[2]}", "labeler_group=training")  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "(evaluate)" in created.stdout
    same = create(f"project_id={ids[0]}", f"model_version_a_id={ids[1]}",
                  f"model_version_b_id={ids[1]}")  # fmt: skip
    assert same.returncode != 0 and "the same version as A" in same.stderr


def test_a_job_on_a_new_snapshot_writes_it_first_and_says_when_it_lacks_the_stages_files(
    empty_url: str, tmp_path: Path
) -> None:
    from tests.factories import make_base_version

    rankery(empty_url, "migrate")
    with Database(empty_url).session() as session:
        base = make_base_version(session, tmp_path / "base")

    created = rankery(empty_url, "jobs", "create", "sft", "--set", "snapshot=new",
                      "--set", f"model_version_id={base.id}")  # fmt: skip

    assert created.returncode != 0
    assert "Writing snapshot" in created.stdout
    assert "Job 1 failed: snapshot:" in created.stderr and "has no sft records" in created.stderr
    assert "#1     sft     failed" in rankery(empty_url, "jobs", "list").stdout


def test_worker_tokens_are_created_on_the_command_line(empty_url: str) -> None:
    rankery(empty_url, "migrate")
    result = rankery(empty_url, "workers", "create", "gpu-box")
    assert result.returncode == 0 and result.stdout.splitlines()[-1].startswith("rk_")
    assert "Usage" in rankery(empty_url, "worker", "--help").stdout


def test_check_splits_reports_each_project(empty_url: str) -> None:
    rankery(empty_url, "migrate")
    rankery(empty_url, "demo")
    result = rankery(empty_url, "check", "splits")
    assert result.returncode == 0, result.stderr
    assert "project 1: ok" in result.stdout and "train" in result.stdout


def test_check_splits_fails_when_an_author_is_in_two_splits(empty_url: str) -> None:
    rankery(empty_url, "migrate")
    rankery(empty_url, "demo")
    with Database(empty_url).session() as session:
        first = session.scalar(select(Prompt).order_by(Prompt.id))
        session.execute(
            update(Prompt).where(Prompt.author_key == first.author_key).values(split="train")
        )
        session.execute(update(Prompt).where(Prompt.id == first.id).values(split="test"))
        session.commit()
    result = rankery(empty_url, "check", "splits", "--project", "1")
    assert result.returncode != 0
    assert "has prompts in" in result.stdout and "more than one split" in result.stderr


OASST = ROOT / "tests" / "data" / "oasst_3_trees.jsonl"


def test_import_oasst_reports_what_it_added_and_adds_nothing_the_second_time(
    empty_url: str,
) -> None:
    rankery(empty_url, "migrate")
    rankery(empty_url, "demo")
    first = rankery(empty_url, "import", "oasst", str(OASST), "--project", "1")
    second = rankery(empty_url, "import", "oasst", str(OASST), "--project", "1")
    assert first.returncode == 0, first.stderr
    assert "Imported 16 prompts, 8 rankings and 11 demonstrations" in first.stdout
    assert "Imported 0 prompts" in second.stdout and "16 prompter turns were there" in second.stdout


def test_import_pairs_from_hh_style_jsonl(empty_url: str, tmp_path: Path) -> None:
    rankery(empty_url, "migrate")
    rankery(empty_url, "demo")
    path = tmp_path / "pairs.jsonl"
    pair = {
        "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!",
        "rejected": "\n\nHuman: Hi\n\nAssistant: Go.",
    }
    path.write_text(json.dumps(pair) + "\n")
    result = rankery(empty_url, "import", "pairs", str(path))
    assert result.returncode == 0, result.stderr
    assert "Imported 1 pairs as K = 2 rankings" in result.stdout


def test_a_file_that_is_not_utf8_is_refused_by_the_cli(empty_url: str, tmp_path: Path) -> None:
    rankery(empty_url, "migrate")
    rankery(empty_url, "demo")
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
    result = rankery(empty_url, "import", "pairs", str(path))
    assert result.returncode != 0
    assert "not UTF-8 text (line 1" in result.stderr and "Nothing was imported" in result.stderr


def test_export_writes_a_snapshot_and_refuses_to_overwrite_it(
    empty_url: str, tmp_path: Path
) -> None:
    rankery(empty_url, "migrate")
    rankery(empty_url, "demo")
    rankery(empty_url, "import", "oasst", str(OASST))
    args = ["export", "--project", "1", "--pairs", "best_vs_rest", "--id", "cli-1"]

    first = rankery(empty_url, *args, data_dir=tmp_path / "var")
    second = rankery(empty_url, *args, data_dir=tmp_path / "var")

    assert first.returncode == 0, first.stderr
    assert "Wrote snapshot cli-1" in first.stdout and "rm.train.jsonl" in first.stdout
    manifest = json.loads((tmp_path / "var" / "exports" / "cli-1" / "manifest.json").read_text())
    assert manifest["filters"]["pairs"] == "best_vs_rest"
    assert second.returncode != 0 and "never overwritten" in second.stderr


def test_export_keeps_too_fast_work_and_gold_rankings_when_asked(
    empty_url: str, tmp_path: Path
) -> None:
    rankery(empty_url, "migrate")
    args = ["export", "--include-too-fast", "--include-gold", "--id", "cli-all"]

    result = rankery(empty_url, *args, data_dir=tmp_path / "var")

    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "var" / "exports" / "cli-all" / "manifest.json").read_text())
    assert manifest["filters"]["include_too_fast"] and manifest["filters"]["include_gold"]


def test_a_backup_restores_into_an_empty_database_from_the_command_line(
    database_url: str, empty_database, session, tmp_path: Path
) -> None:
    make_user(session, username="kept")
    made = rankery(database_url, "backup", str(tmp_path / "backup"), data_dir=tmp_path / "var")
    assert made.returncode == 0, made.stderr
    target = empty_database()

    restored = rankery(target, "restore", str(tmp_path / "backup"), data_dir=tmp_path / "new")

    assert restored.returncode == 0, restored.stderr
    assert "row counts match the backup" in restored.stdout
    database = Database(target)
    with database.session(write=False) as target_session:
        assert target_session.scalar(select(User.username)) == "kept"
    database.dispose()


def test_restore_refuses_a_database_that_holds_rows_from_the_command_line(
    database_url: str, session, tmp_path: Path
) -> None:
    make_user(session, username="kept")
    rankery(database_url, "backup", str(tmp_path / "backup"), data_dir=tmp_path / "var")
    refused = rankery(database_url, "restore", str(tmp_path / "backup"), data_dir=tmp_path / "var")
    assert refused.returncode == 1
    assert "not empty" in refused.stderr and "--force" in refused.stderr


def test_export_takes_an_agreement_threshold(empty_url: str, tmp_path: Path) -> None:
    rankery(empty_url, "migrate")
    args = ["export", "--min-labeler-agreement", "0.6", "--id", "cli-agreeing"]

    result = rankery(empty_url, *args, data_dir=tmp_path / "var")
    refused = rankery(empty_url, "export", "--min-labeler-agreement", "60")

    assert result.returncode == 0, result.stderr
    path = tmp_path / "var" / "exports" / "cli-agreeing"
    filters = json.loads((path / "manifest.json").read_text())["filters"]
    assert filters["min_labeler_agreement"] == 0.6
    assert "0 labelers were left out" in (path / "README.md").read_text()
    assert refused.returncode != 0 and "0<=x<=1" in refused.stderr
