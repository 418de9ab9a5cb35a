"""The admin's import page: OASST trees, chosen/rejected pairs and completions from an upload,
all or nothing per file, idempotent, bad lines reported by number."""

import json
from pathlib import Path

from sqlalchemy import func, select

from app.models import Item, Prompt
from tests.factories import login, make_project, make_user

OASST = Path(__file__).parents[1] / "data" / "oasst_3_trees.jsonl"
PAIR = {
    "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!",
    "rejected": "\n\nHuman: Hi\n\nAssistant: Go.",
}


def upload(client, project, token: str, kind: str, content: bytes):
    return client.post(
        f"/admin/projects/{project.id}/import",
        data={"csrf_token": token, "kind": kind},
        files={"file": ("data.jsonl", content, "application/x-ndjson")},
    )


def prompts(session) -> int:
    return session.scalar(select(func.count()).select_from(Prompt))


def test_an_admin_imports_oasst_trees_from_the_page(client, session) -> None:
    project = make_project(session)
    token = login(client, make_user(session, "admin"))
    page = upload(client, project, token, "oasst", OASST.read_bytes())
    assert page.status_code == 200 and "Imported" in page.text and "rankings" in page.text
    assert prompts(session) > 0


def test_importing_the_same_file_again_adds_nothing(client, session) -> None:
    project = make_project(session)
    token = login(client, make_user(session, "admin"))
    upload(client, project, token, "pairs", json.dumps(PAIR).encode())
    again = upload(client, project, token, "pairs", json.dumps(PAIR).encode())
    assert "Imported 0 pairs" in again.text and "1 pairs were there already" in again.text
    assert session.scalar(select(func.count()).select_from(Item)) == 1


def test_a_bad_file_lists_its_bad_lines_and_imports_nothing(client, session) -> None:
    project = make_project(session)
    token = login(client, make_user(session, "admin"))
    lines = [json.dumps(PAIR), json.dumps({"chosen": "x"}), "{not json"]
    page = upload(client, project, token, "pairs", "\n".join(lines).encode())
    assert page.status_code == 422 and "Nothing was imported" in page.text
    assert "line 2" in page.text and "line 3" in page.text
    assert prompts(session) == 0


def test_a_file_that_is_not_utf8_is_refused(client, session) -> None:
    project = make_project(session)
    token = login(client, make_user(session, "admin"))
    page = upload(client, project, token, "completions", b'{"prompt": "caf\xe9"}\n')
    assert page.status_code == 422 and "not UTF-8 text (line 1" in page.text


def test_a_missing_file_or_an_unknown_kind_is_refused(client, session) -> None:
    project = make_project(session)
    token = login(client, make_user(session, "admin"))
    assert "Choose a file" in upload(client, project, token, "oasst", b"").text
    assert "Choose what the file holds" in upload(client, project, token, "csv", b"{}").text


def test_the_import_form_needs_the_csrf_token_and_an_admin(client, session) -> None:
    project = make_project(session)
    login(client, make_user(session, "admin"))
    assert upload(client, project, "stale", "pairs", json.dumps(PAIR).encode()).status_code == 403
    token = login(client, make_user(session))
    assert client.get(f"/admin/projects/{project.id}/import").status_code == 403
    assert upload(client, project, token, "pairs", json.dumps(PAIR).encode()).status_code == 403
    assert prompts(session) == 0
