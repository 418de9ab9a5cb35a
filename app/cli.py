"""The `rankery` command line."""

import sys
from pathlib import Path

import click

from app.config import get_settings
from app.db import Database
from app.errors import ServiceError
from app.models.jobs import JOB_KINDS
from app.runtime import freeze_startup_heap

ROOT = Path(__file__).resolve().parents[1]


def _db() -> Database:
    return Database(get_settings().database_url)


def _fail(exc: ServiceError) -> None:
    raise click.ClickException(exc.message)


@click.group(help="Rankery: human feedback for language models.")
def main() -> None:
    pass


@main.command(help="Apply database migrations (Alembic) up to the newest.")
def migrate() -> None:
    from app.migrate import upgrade

    url = get_settings().database_url
    upgrade(url)
    click.echo(f"Database is at the newest schema: {url}")


@main.command("create-user", help="Create a user (password asked for, or read from stdin).")
@click.argument("username")
@click.option(
    "--role",
    type=click.Choice(["admin", "labeler", "candidate"]),
    default="labeler",
    show_default=True,
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user(username: str, role: str, password_stdin: bool) -> None:
    from app.errors import validated
    from app.schemas.admin import UserIn
    from app.services.users import create_user as create

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _db().session() as session:
        try:
            user = create(
                session,
                validated(UserIn, {"username": username, "password": password, "role": role}),
            )
        except ServiceError as exc:
            _fail(exc)
        click.echo(f"Created {user.role} {user.username} (id {user.id}).")


@main.command(help="Serve the web app and API.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="Server processes.")
def serve(host: str, port: int, workers: int) -> None:
    import uvicorn

    uvicorn.run("app.asgi:app", host=host, port=port, workers=workers, proxy_headers=True)


@main.command(
    help="Run jobs (SFT, RM, PPO, sampling) for the app at --api-url; needs no database access, "
    "only a worker token (an admin creates one: `rankery workers create NAME`). A worker that "
    "shares the app's DATA_DIR (same machine or a shared volume) reads and writes artifacts "
    "there; any other downloads snapshots and models through the API into --work-dir and "
    "uploads the trained model."
)
@click.option("--api-url", envvar="RANKERY_API_URL", default="http://127.0.0.1:8000",
              show_default=True)  # fmt: skip
@click.option("--token", envvar="RANKERY_WORKER_TOKEN", required=True,
              help="worker token (or RANKERY_WORKER_TOKEN)")  # fmt: skip
@click.option("--once", is_flag=True, help="Exit when no job waits instead of polling.")
@click.option("--poll-seconds", default=5.0, show_default=True, type=float)
@click.option("--lease-seconds", default=60, show_default=True, type=int)
@click.option("--gpus", type=int, default=None, help="GPUs to use (default: all visible).")
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path),
    default=Path("var/worker"),
    show_default=True,
    help="downloads and run directories, when the app's disk is not shared",
)
@click.option(
    "--artifacts",
    type=click.Choice(["auto", "shared", "http"]),
    default="auto",
    show_default=True,
    help="auto: the app's disk when this machine shares it, else through the API",
)
def worker(
    api_url: str,
    token: str,
    once: bool,
    poll_seconds: float,
    lease_seconds: int,
    gpus: int | None,
    work_dir: Path,
    artifacts: str,
) -> None:
    import logging

    try:
        from trainer.worker import Api, serve
    except ImportError as exc:
        raise click.ClickException(
            f"the worker needs the 'train' extra ({exc.name} is missing): "
            "pip install 'rankery[train]'"
        ) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per poll
    api = Api.connect(api_url, token)
    ran = serve(api, once, poll_seconds, lease_seconds, gpus, work_dir, artifacts)
    click.echo(f"Ran {ran} job(s).")


@main.group(help="Worker tokens: a worker may claim and run jobs and do nothing else.")
def workers() -> None:
    pass


@workers.command("create", help="Create a worker token (printed once).")
@click.argument("name")
def workers_create(name: str) -> None:
    from app.services.workers import create_worker

    with _db().session() as session:
        worker, token = create_worker(session, name)
    click.echo(f"Worker {worker.name} (id {worker.id}). Its token, shown once:")
    click.echo(token)


@workers.command("revoke", help="Revoke a worker's token.")
@click.argument("worker_id", type=int)
def workers_revoke(worker_id: int) -> None:
    from app.services.workers import revoke_worker

    with _db().session() as session:
        try:
            worker = revoke_worker(session, worker_id)
        except ServiceError as exc:
            _fail(exc)
    click.echo(f"Revoked worker {worker.name}.")


@main.group(help="Training and sampling jobs.")
def jobs() -> None:
    pass


@jobs.command("list", help="List the newest jobs.")
def jobs_list() -> None:
    from app.services.jobs import list_jobs

    with _db().session(write=False) as session:
        for job in list_jobs(session):
            progress = "" if job.progress is None else f" {job.progress:.0%}"
            click.echo(f"#{job.id:<5} {job.kind:<7} {job.state:<10}{progress}")


@jobs.command(
    "create",
    help="Queue a job: KIND (sample|sft|rm|ppo|evaluate) and --set key=value params. Training "
    "jobs name a snapshot (--set snapshot=ID or a path), or make a new one with the export "
    "filters' defaults (--set snapshot=new), written before this command returns.",
)
@click.argument("kind", type=click.Choice(list(JOB_KINDS)))
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="a parameter; lists comma-separated (prompt_ids=1,2,3)")  # fmt: skip
@click.option("--gpus", default=1, show_default=True, type=int)
def jobs_create(kind: str, settings: tuple[str, ...], gpus: int) -> None:
    from app.errors import validated
    from app.schemas.jobs import JobIn
    from app.services.jobs import create_job, get_job, write_snapshot

    params: dict[str, object] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.ClickException(f"{item!r} is not of the form key=value")
        params[key] = value.split(",") if key.endswith("_ids") else value
    db, config, made = _db(), get_settings(), []
    with db.session() as session:
        try:
            data = validated(JobIn, {"kind": kind, "params": params, "gpus": gpus})
            job = create_job(session, data, None, config, made.append)
        except ServiceError as exc:
            _fail(exc)
    for snapshot_id in made:
        click.echo(f"Writing snapshot {snapshot_id} for job {job.id}...")
        write_snapshot(db, config, snapshot_id)
        with db.session(write=False) as session:
            job = get_job(session, job.id)
    if job.state == "failed":
        raise click.ClickException(f"Job {job.id} failed: {job.error}")
    click.echo(f"Queued job {job.id} ({job.kind}).")


@jobs.command("cancel", help="Cancel a queued or running job.")
@click.argument("job_id", type=int)
def jobs_cancel(job_id: int) -> None:
    from app.services.jobs import cancel_job

    with _db().session() as session:
        try:
            job = cancel_job(session, job_id)
        except ServiceError as exc:
            _fail(exc)
    click.echo(f"Job {job.id}: {'cancelled' if job.state == 'cancelled' else 'cancel sent'}.")


@main.command(help="Fill an empty database with a small demo project and print its logins.")
def demo() -> None:
    from app.services.demo import load_demo, register_demo_base

    with _db().session() as session:
        try:
            logins = load_demo(session)
        except ServiceError as exc:
            _fail(exc)
        try:
            base = register_demo_base(session, get_settings().data_dir)
        except ImportError as exc:
            base = None
            click.echo(f"No demo base model: the trainer extra is not installed ({exc.name}).")
    click.echo("Demo project loaded. Log in with:")
    for username, role, password in logins:
        click.echo(f"  {username:<8} {role:<8} password: {password}")
    if base:
        click.echo(f"A tiny base model to train from is registered as {base!r}.")


@main.group("import", help="Import data from files.")
def import_() -> None:
    pass


def _read(file: Path) -> str:
    from app.services.imports import decode

    try:
        return decode(file.read_bytes())
    except ServiceError as exc:
        raise click.ClickException(f"{file}: {exc.message}") from None


FILE = click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
PROJECT = click.option("--project", "project_id", type=int, default=1, show_default=True)
ATOMIC = " All or nothing per file; importing a file again adds nothing."


@import_.command("completions", help="Import completions to rank from a JSONL file." + ATOMIC)
@FILE
@PROJECT
def import_completions(file: Path, project_id: int) -> None:
    from app.services import imports, projects

    text = _read(file)
    with _db().session() as session:
        try:
            project = projects.get_project(session, project_id)
            report = imports.import_ranking_items(
                session, project, imports.parse_jsonl(text), unit="line"
            )
        except ServiceError as exc:
            _fail(exc)
    click.echo(
        f"Imported {len(report.items)} ranking items into project {project_id}"
        f" ({report.skipped} were there already)."
    )
    if report.dropped:
        click.echo(f"Dropped {len(report.dropped)} duplicate prompt(s):")
        for reason in report.dropped:
            click.echo(f"  {reason}")
    if report.held:
        click.echo(f"{report.held} prompt(s) with personal data wait for an admin's review.")


@import_.command("oasst", help="Import OpenAssistant conversation trees (JSONL)." + ATOMIC)
@FILE
@PROJECT
def import_oasst(file: Path, project_id: int) -> None:
    _import_file("oasst", file, project_id)


@import_.command("pairs", help="Import chosen/rejected pairs (HH-RLHF style JSONL)." + ATOMIC)
@FILE
@PROJECT
def import_pairs(file: Path, project_id: int) -> None:
    _import_file("pairs", file, project_id)


def _import_file(kind: str, file: Path, project_id: int) -> None:
    from app.services import import_files, projects

    with _db().session() as session:
        try:
            project = projects.get_project(session, project_id)
            report = import_files.import_file(
                session, project, kind, file.read_bytes(), max_bytes=None
            )
        except ServiceError as exc:
            raise click.ClickException(f"{file}: {exc.message}") from None
    click.echo(f"Project {project_id}: {report.message}")


@main.command(help="Write an export snapshot to DATA_DIR/exports/<id>/ (never overwritten).")
@click.option("--project", "project_id", type=int, help="Only this project (default: all).")
@click.option("--since", type=click.DateTime(), help="Records created at or after (UTC).")
@click.option("--until", type=click.DateTime(), help="Records created before (UTC).")
@click.option(
    "--labeler-group",
    "labeler_groups",
    multiple=True,
    type=click.Choice(["training", "held_out", "imported"]),
    help="Whose rankings and demonstrations (repeatable; default: training and imported).",
)
@click.option(
    "--exclude-labeler", "exclude_labelers", multiple=True, help="A username to leave out."
)
@click.option(
    "--min-labeler-agreement",
    type=click.FloatRange(0, 1),
    help="Leave out labelers whose agreement with the other labelers is below this share "
    "(0-1); labelers with too few compared rankings to judge are kept.",
)
@click.option(
    "--max-prompts-per-author",
    type=int,
    default=200,
    show_default=True,
    help="Keep each author's earliest prompts only (0: keep all).",
)
@click.option(
    "--include-too-fast",
    is_flag=True,
    help="Keep work flagged as submitted implausibly fast (left out by default).",
)
@click.option(
    "--include-gold",
    is_flag=True,
    help="Keep labelers' rankings of gold items (left out by default).",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["jsonl", "parquet", "both"]),
    default="jsonl",
    show_default=True,
)
@click.option(
    "--pairs",
    type=click.Choice(["none", "all", "best_vs_rest"]),
    default="none",
    show_default=True,
    help="Also write the prompt/chosen/rejected pairs view.",
)
@click.option("--id", "snapshot_id", help="The snapshot's id (default: time and a random suffix).")
def export(
    project_id: int | None,
    since: object,
    until: object,
    labeler_groups: tuple[str, ...],
    exclude_labelers: tuple[str, ...],
    min_labeler_agreement: float | None,
    max_prompts_per_author: int,
    include_too_fast: bool,
    include_gold: bool,
    format_: str,
    pairs: str,
    snapshot_id: str | None,
) -> None:
    from app.errors import validated
    from app.schemas.snapshot import ExportRequest
    from app.services import exports

    settings = get_settings()
    values: dict[str, object] = {
        "project_id": project_id,
        "since": since,
        "until": until,
        "exclude_labelers": list(exclude_labelers),
        "min_labeler_agreement": min_labeler_agreement,
        "max_prompts_per_author": max_prompts_per_author or None,
        "include_too_fast": include_too_fast,
        "include_gold": include_gold,
        "format": format_,
        "pairs": pairs,
    }
    if labeler_groups:
        values["labeler_groups"] = list(labeler_groups)
    db = _db()
    with db.session() as session:
        try:
            request = validated(ExportRequest, values)
            snapshot = exports.request_snapshot(session, settings, request, None, snapshot_id)
        except ServiceError as exc:
            _fail(exc)
    freeze_startup_heap()
    snapshot = exports.run_snapshot(db, settings, snapshot.id)
    if snapshot.state != "done":
        raise click.ClickException(f"The export failed: {snapshot.error}")
    click.echo(f"Wrote snapshot {snapshot.id} to {exports.snapshot_dir(settings, snapshot.id)}")
    for name, count in (snapshot.counts or {}).items():
        click.echo(f"  {name:<28} {count:>9} records")


@main.command(
    help="Back up the database and DATA_DIR (exports, job runs, models) to the new directory "
    "OUT, with a manifest of row counts and checksums. Safe while the server runs."
)
@click.argument("out", type=click.Path(path_type=Path))
def backup(out: Path) -> None:
    from app.services import backup as backups

    try:
        manifest = backups.backup(get_settings(), out)
    except ServiceError as exc:
        _fail(exc)
    summary = backups.manifest_summary(manifest)
    click.echo(
        f"Backed up {summary['dialect']} at schema revision {summary['schema_revision']}: "
        f"{summary['rows']} rows in {summary['tables']} tables, {summary['files']} files, "
        f"to {out}"
    )


@main.command(
    help="Restore a backup made by `rankery backup` into this instance's database and DATA_DIR. "
    "Checks every checksum first; refuses a database that holds rows, or files that would be "
    "overwritten, unless --force. Stop the server while restoring."
)
@click.argument("source", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--force", is_flag=True, help="Replace a non-empty database and existing files.")
def restore(source: Path, force: bool) -> None:
    from app.services import backup as backups

    try:
        report = backups.restore(get_settings(), source, force)
    except ServiceError as exc:
        _fail(exc)
    summary = backups.manifest_summary(report.manifest)
    click.echo(
        f"Restored {summary['rows']} rows in {summary['tables']} tables and "
        f"{report.files_restored} files; row counts match the backup."
    )
    for note in report.notes:
        click.echo(note)


@main.group(help="Check the data for problems.")
def check() -> None:
    pass


@check.command("splits", help="Prove that no prompt author has prompts in two splits.")
@click.option("--project", "project_id", type=int, help="Only this project (default: all).")
def check_splits(project_id: int | None) -> None:
    from app.services import splits

    with _db().session(write=False) as session:
        reports = splits.check(session, project_id)
    if project_id is not None and not reports:
        raise click.ClickException(f"There is no project {project_id}.")
    for report in reports:
        shares = ", ".join(
            f"{split} {report.authors[split]} authors / {report.prompts[split]} prompts"
            for split in report.authors
        )
        state = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        click.echo(f"project {report.project_id}: {state}; {shares}")
        for problem in report.problems:
            click.echo(f"  {problem}")
    if not all(report.ok for report in reports):
        raise click.ClickException("Some authors have prompts in more than one split.")


@main.group(
    help="Train SFT, reward-model and PPO stages on an export snapshot (needs the "
    "'train' extra: pip install 'rankery[train]')."
)
def train() -> None:
    pass


def _train_command(stage: str, summary: str) -> None:
    # The trainer defines its own arguments (`python -m trainer.STAGE` and `accelerate launch`
    # use the same ones), so they pass through untouched; `--help` shows them.
    @train.command(
        stage,
        help=f"{summary} Run `rankery train {stage} --help` for the options.",
        context_settings={"ignore_unknown_options": True, "help_option_names": []},
        add_help_option=False,
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        try:
            from trainer.cli import stage_main
        except ImportError as exc:  # torch and friends are an optional extra
            raise click.ClickException(
                f"the trainer needs the 'train' extra ({exc.name} is missing): "
                "pip install 'rankery[train]'"
            ) from None
        stage_main(stage, list(args))


_train_command("sft", "Supervised fine-tuning on demonstrations.")
_train_command("rm", "Reward model on K-wise rankings.")
_train_command("ppo", "PPO(-ptx) against a reward model.")


if __name__ == "__main__":
    main()
