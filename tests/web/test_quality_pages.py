"""The admin's agreement page, its CSV tables and the same numbers through the API."""

import csv
import io

import pytest
from sqlalchemy import select

from app.models import User
from tests.factories import (
    bearer,
    login,
    make_agreeing_and_opposed_pair,
    make_gold_item,
    make_project,
    make_ranking_item,
    make_user,
    rank_next,
)


@pytest.fixture
def ranked_project(session):
    """Ann and Bob ranked one item the same way and another in opposite orders."""
    project, _ann, _bob = make_agreeing_and_opposed_pair(session)
    return project


def test_the_page_shows_agreement_with_its_interval_and_four_plots(
    client, session, ranked_project
) -> None:
    login(client, make_user(session, "admin"))

    page = client.get(f"/admin/projects/{ranked_project.id}/quality").text

    assert 'id="agreement-rate">50.0 %' in page
    assert "95 % interval" in page and "Krippendorff" in page
    assert page.count("<svg") == 4
    assert "ann" in page and "bob" in page


def test_the_labeler_table_sorts_by_a_column(client, session, ranked_project) -> None:
    login(client, make_user(session, "admin"))
    url = f"/admin/projects/{ranked_project.id}/quality"

    ascending = client.get(url, params={"sort": "username", "order": "asc"}).text
    descending = client.get(url, params={"sort": "username", "order": "desc"}).text

    table = 'id="table-labelers"'
    first = ascending[ascending.index(table) :]
    second = descending[descending.index(table) :]
    assert first.index(">ann<") < first.index(">bob<")
    assert second.index(">bob<") < second.index(">ann<")


def test_the_labeler_table_downloads_as_csv(client, session, ranked_project) -> None:
    login(client, make_user(session, "admin"))

    response = client.get(f"/admin/projects/{ranked_project.id}/quality/labelers.csv")

    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["username"], float(r["agreement"])) for r in rows] == [("ann", 0.5), ("bob", 0.5)]


def test_a_window_ending_before_it_starts_shows_a_message(client, session, ranked_project) -> None:
    login(client, make_user(session, "admin"))
    response = client.get(
        f"/admin/projects/{ranked_project.id}/quality",
        params={"since": "2026-02-01", "until": "2026-01-01"},
    )
    assert response.status_code == 422
    assert "must not be after" in response.text


def test_a_labeler_group_narrows_the_page(client, session, ranked_project) -> None:
    ann = session.scalar(select(User).where(User.username == "ann"))
    login(client, make_user(session, "admin"))
    page = client.get(
        f"/admin/projects/{ranked_project.id}/quality", params={"labeler": ann.id}
    ).text
    assert 'id="agreement-rate">\N{EN DASH}' in page


@pytest.mark.parametrize(
    "path", ["/admin/projects/{id}/quality", "/admin/projects/{id}/quality/labelers.csv"]
)
def test_labelers_may_not_see_the_statistics(client, session, ranked_project, path) -> None:
    login(client, make_user(session))
    response = client.get(path.format(id=ranked_project.id))
    assert response.status_code == 403


def test_the_api_gives_admins_the_same_numbers(client, session, ranked_project) -> None:
    headers = bearer(session, make_user(session, "admin"))

    report = client.get(f"/api/v1/projects/{ranked_project.id}/quality", headers=headers).json()

    assert report["summary"]["rate"] == 0.5
    assert report["summary"]["comparisons"] == 2
    assert [r["username"] for r in report["labelers"]] == ["ann", "bob"]
    assert report["pairs"][0]["comparisons"] == 2
    assert sum(d["submitted"] for d in report["throughput"]) == 4


def test_the_api_refuses_the_statistics_to_labelers(client, session, ranked_project) -> None:
    headers = bearer(session, make_user(session))
    response = client.get(f"/api/v1/projects/{ranked_project.id}/quality", headers=headers)
    assert response.status_code == 403


def test_the_api_explains_a_reversed_window(client, session, ranked_project) -> None:
    headers = bearer(session, make_user(session, "admin"))
    response = client.get(
        f"/api/v1/projects/{ranked_project.id}/quality",
        params={"since": "2026-02-01", "until": "2026-01-01"},
        headers=headers,
    )
    assert response.status_code == 422 and "must not be after" in response.json()["detail"]


def test_the_dashboard_links_each_projects_quality_pages(client, session, ranked_project) -> None:
    login(client, make_user(session, "admin"))
    page = client.get("/admin").text
    assert f'href="/admin/projects/{ranked_project.id}/quality"' in page


def test_the_page_reports_agreement_per_labeler_group(client, session, ranked_project) -> None:
    login(client, make_user(session, "admin"))
    page = client.get(f"/admin/projects/{ranked_project.id}/quality").text
    assert 'id="group-training"' in page and "Held-out labelers with training labelers" in page


def test_the_page_shows_gold_accuracy_per_labeler_and_day(client, session) -> None:
    project = make_project(session, gold_percent=100)
    make_gold_item(session, project, ranks=[1, 2, 3, 4])
    rank_next(session, project, make_user(session, username="gia"), [2, 1, 3, 4])
    login(client, make_user(session, "admin"))

    page = client.get(f"/admin/projects/{project.id}/quality").text
    gold_csv = client.get(f"/admin/projects/{project.id}/quality/gold.csv").text

    assert 'id="table-gold"' in page and "Agreement with gold" in page
    [row] = list(csv.DictReader(io.StringIO(gold_csv)))
    assert (row["username"], float(row["agreement"])) == ("gia", 5 / 6)


def test_the_page_lists_labelers_who_submit_too_fast(client, session) -> None:
    project = make_project(session, min_task_ms=60_000, too_fast_review_count=1)
    make_ranking_item(session, project)
    rank_next(session, project, make_user(session, username="hasty"), [1, 2, 3, 4])
    login(client, make_user(session, "admin"))

    page = client.get(f"/admin/projects/{project.id}/quality").text
    report = client.get(
        f"/api/v1/projects/{project.id}/quality",
        headers=bearer(session, make_user(session, "admin")),
    ).json()

    table = page[page.index('id="too-fast"') :]
    assert "<td>hasty</td><td>1</td>" in table
    assert [(t["username"], t["flagged"]) for t in report["too_fast"]] == [("hasty", 1)]
