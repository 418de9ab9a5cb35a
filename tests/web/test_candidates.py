"""A candidate's account can only take the screening test: every other page and endpoint
answers 403 with a message that says so, and changes nothing."""

import pytest

from app.models import Prompt
from tests.factories import bearer, login, make_project, make_user

SAYS_SO = "can only take the screening test"


@pytest.mark.parametrize(
    "path", ["/labeler", "/labeler/projects/{project}/prompts/new", "/admin", "/admin/users"]
)
def test_a_candidate_cannot_open_labeler_or_admin_pages(client, session, path) -> None:
    project = make_project(session)
    login(client, make_user(session, "candidate"))

    response = client.get(path.format(project=project.id))

    assert response.status_code == 403
    assert SAYS_SO in response.text


def test_a_candidate_cannot_take_normal_tasks_or_write_prompts(client, session) -> None:
    project = make_project(session)
    token = login(client, make_user(session, "candidate"))

    take = client.post(
        f"/labeler/projects/{project.id}/next", data={"kind": "ranking", "csrf_token": token}
    )
    write = client.post(
        f"/labeler/projects/{project.id}/prompts",
        data={"kind": "plain", "category": "other", "instruction": "Hi", "csrf_token": token},
    )

    assert (take.status_code, write.status_code) == (403, 403)
    assert session.query(Prompt).count() == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/projects/{project}/tasks/next?kind=ranking"),
        ("get", "/api/v1/projects/{project}/waiting"),
        ("get", "/api/v1/me/today"),
        ("get", "/api/v1/projects/{project}/quality"),
    ],
)
def test_a_candidate_gets_403_from_the_labeling_api(client, session, method, path) -> None:
    project = make_project(session)
    headers = bearer(session, make_user(session, "candidate"))

    response = getattr(client, method)(path.format(project=project.id), headers=headers)

    assert response.status_code == 403
    assert SAYS_SO in response.json()["detail"]


def test_a_labeler_cannot_see_admin_statistics(client, session) -> None:
    project = make_project(session)
    headers = bearer(session, make_user(session))
    login(client, make_user(session))

    page = client.get(f"/admin/projects/{project.id}/quality")
    api = client.get(f"/api/v1/projects/{project.id}/quality", headers=headers)

    assert (page.status_code, api.status_code) == (403, 403)
    assert "for admins" in page.text
