"""The `rankery` command line."""

import sys
from pathlib import Path

import click

from app.config import get_settings
from app.db import Database
from app.errors import ServiceError

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
    "--role", type=click.Choice(["admin", "labeler"]), default="labeler", show_default=True
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


@main.command(help="Fill an empty database with a small demo project and print its logins.")
def demo() -> None:
    from app.services.demo import load_demo

    with _db().session() as session:
        try:
            logins = load_demo(session)
        except ServiceError as exc:
            _fail(exc)
    click.echo("Demo project loaded. Log in at http://127.0.0.1:8000 with:")
    for username, role, password in logins:
        click.echo(f"  {username:<8} {role:<8} password: {password}")


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
            lines = imports.parse_jsonl(text)
            items = imports.import_ranking_items(session, project, lines, unit="line")
        except ServiceError as exc:
            _fail(exc)
    click.echo(
        f"Imported {len(items)} ranking items into project {project_id}"
        f" ({len(lines) - len(items)} were there already)."
    )


@import_.command("oasst", help="Import OpenAssistant conversation trees (JSONL)." + ATOMIC)
@FILE
@PROJECT
def import_oasst(file: Path, project_id: int) -> None:
    from app.services import import_oasst, projects

    text = _read(file)
    with _db().session() as session:
        try:
            project = projects.get_project(session, project_id)
            report = import_oasst.import_trees(session, project, import_oasst.parse(text))
        except ServiceError as exc:
            _fail(exc)
    click.echo(
        f"Imported {report.prompts} prompts, {report.rankings} rankings and "
        f"{report.demonstrations} demonstrations into project {project_id} "
        f"({report.skipped} prompter turns were there already)."
    )


@import_.command("pairs", help="Import chosen/rejected pairs (HH-RLHF style JSONL)." + ATOMIC)
@FILE
@PROJECT
def import_pairs(file: Path, project_id: int) -> None:
    from app.services import import_pairs, projects

    text = _read(file)
    with _db().session() as session:
        try:
            project = projects.get_project(session, project_id)
            report = import_pairs.import_pairs(session, project, import_pairs.parse(text))
        except ServiceError as exc:
            _fail(exc)
    click.echo(
        f"Imported {report.rankings} pairs as K = 2 rankings ({report.prompts} new prompts) "
        f"into project {project_id} ({report.skipped} were there already)."
    )


@main.command(help="Write an export snapshot to DATA_DIR/exports/<id>/ (never overwritten).")
@click.option("--project", "project_id", type=int, help="Only this project (default: all).")
@click.option("--since", type=click.DateTime(), help="Records created at or after (UTC).")
@click.option("--until", type=click.DateTime(), help="Records created before (UTC).")
@click.option(
    "--labeler-group",
    "labeler_groups",
    multiple=True,
    type=click.Choice(["training", "imported"]),
    help="Whose rankings and demonstrations (repeatable; default: both).",
)
@click.option(
    "--exclude-labeler", "exclude_labelers", multiple=True, help="A username to leave out."
)
@click.option(
    "--max-prompts-per-author",
    type=int,
    default=200,
    show_default=True,
    help="Keep each author's earliest prompts only (0: keep all).",
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
    max_prompts_per_author: int,
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
        "max_prompts_per_author": max_prompts_per_author or None,
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
    snapshot = exports.run_snapshot(db, settings, snapshot.id)
    if snapshot.state != "done":
        raise click.ClickException(f"The export failed: {snapshot.error}")
    click.echo(f"Wrote snapshot {snapshot.id} to {exports.snapshot_dir(settings, snapshot.id)}")
    for name, count in (snapshot.counts or {}).items():
        click.echo(f"  {name:<28} {count:>9} records")


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


if __name__ == "__main__":
    main()
