"""Admin pages for data quality: agreement and labeler statistics, with plots and CSV."""

import csv
import io
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from app.deps import SessionDep, WebAdmin, verify_csrf
from app.errors import NotFound, ServiceError, validated
from app.schemas.quality import StatsFilter
from app.services import projects, users
from app.services.labeler_stats import FLAG_NAMES
from app.services.quality_report import QualityReport, project_report
from app.web import charts
from app.web.render import render

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(verify_csrf)])


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    kind: str = "text"  # text | share | number | seconds


@dataclass(frozen=True)
class Table:
    name: str
    columns: list[Column]
    rows: list[dict[str, Any]]


def _labeler_table(report: QualityReport) -> Table:
    columns = [
        Column("username", "Labeler"),
        Column("agreement", "Agreement with others", "share"),
        Column("comparisons", "Comparisons", "number"),
        Column("tau", "Mean Kendall's τ", "number"),
        Column("submitted", "Tasks submitted", "number"),
        Column("skip_rate", "Skip rate", "share"),
        Column("median_seconds", "Median time per task (s)", "seconds"),
        Column("all_bad_share", "“All bad”", "share"),
        Column("gold_agreement", "Agreement with gold", "share"),
        Column("gold_rankings", "Gold items ranked", "number"),
        *(
            Column(f"flag_{flag}", f"Flag: {flag.replace('_', ' ')}", "share")
            for flag in FLAG_NAMES
        ),
    ]
    rows = [
        {
            "username": row.username,
            "agreement": row.agreement,
            "comparisons": row.comparisons,
            "tau": row.tau,
            "submitted": row.submitted,
            "skip_rate": row.skip_rate,
            "median_seconds": row.median_seconds,
            "all_bad_share": row.all_bad_share,
            "gold_agreement": row.gold_agreement,
            "gold_rankings": row.gold_rankings,
            **{f"flag_{flag}": row.flag_rates[flag] for flag in FLAG_NAMES},
        }
        for row in report.labelers
    ]
    return Table("labelers", columns, rows)


def _pair_table(report: QualityReport) -> Table:
    columns = [
        Column("labeler_a", "Labeler"),
        Column("labeler_b", "Labeler"),
        Column("agreement", "Agreement", "share"),
        Column("comparisons", "Items in common", "number"),
        Column("tau", "Mean Kendall's τ", "number"),
    ]
    return Table("pairs", columns, [vars(p) for p in report.pairs])


def _day_table(report: QualityReport) -> Table:
    throughput = {str(d.day): d for d in report.throughput}
    agreeing = {str(d.day): d for d in report.agreement_by_day}
    columns = [
        Column("day", "Day"),
        Column("submitted", "Tasks submitted", "number"),
        Column("skipped", "Skipped", "number"),
        Column("agreement", "Agreement", "share"),
        Column("comparisons", "Comparisons", "number"),
    ]
    rows = []
    for day in sorted(set(throughput) | set(agreeing)):
        done, agree = throughput.get(day), agreeing.get(day)
        rows.append(
            {
                "day": day,
                "submitted": done.submitted if done else 0,
                "skipped": done.skipped if done else 0,
                "agreement": agree.rate if agree else None,
                "comparisons": agree.comparisons if agree else 0,
            }
        )
    return Table("days", columns, rows)


def _gold_table(report: QualityReport) -> Table:
    columns = [
        Column("username", "Labeler"),
        Column("day", "Day"),
        Column("agreement", "Agreement with gold", "share"),
        Column("rankings", "Gold items ranked", "number"),
    ]
    rows = [{**vars(g), "day": str(g.day)} for g in report.gold_by_day]
    return Table("gold", columns, rows)


TABLES = {
    "labelers": _labeler_table,
    "pairs": _pair_table,
    "days": _day_table,
    "gold": _gold_table,
}


def _sorted(table: Table, sort: str | None, descending: bool) -> Table:
    if sort not in {c.key for c in table.columns}:
        return table
    present = [r for r in table.rows if r[sort] is not None]
    missing = [r for r in table.rows if r[sort] is None]
    present.sort(key=lambda r: r[sort], reverse=descending)
    return Table(table.name, table.columns, present + missing)  # blanks last either way


def _charts(report: QualityReport) -> dict[str, Any]:
    return {
        "per_labeler": charts.bars(
            "Agreement with the other labelers",
            [(r.username, r.agreement) for r in report.labelers if r.agreement is not None],
            maximum=1,
        ),
        "over_time": charts.line(
            "Agreement per day",
            [(str(d.day), d.rate) for d in report.agreement_by_day if d.rate is not None],
        ),
        "throughput": charts.columns(
            "Tasks submitted per day", [(str(d.day), d.submitted) for d in report.throughput]
        ),
        "time_histogram": charts.columns(
            "Time per task", [(b.label, b.count) for b in report.time_histogram]
        ),
    }


LabelerIds = Annotated[list[str], Query(alias="labeler")]


def _filters(since: str, until: str, labeler: list[str]) -> StatsFilter:
    return validated(
        StatsFilter,
        {
            "since": since or None,
            "until": until or None,
            "labeler_ids": [value for value in labeler if value],
        },
    )


@router.get("/projects/{project_id}/quality")
def quality_page(
    request: Request,
    project_id: int,
    session: SessionDep,
    _admin: WebAdmin,
    since: str = "",
    until: str = "",
    labeler: LabelerIds = [],  # noqa: B006  (FastAPI copies defaults)
    sort: str = "username",
    order: str = "asc",
) -> Response:
    project = projects.get_project(session, project_id)
    context: dict[str, Any] = {
        "project": project,
        "values": {"since": since, "until": until, "labeler": labeler},
        "labelers": [u for u in users.list_users(session) if u.role == "labeler"],
        "sort": sort,
        "order": order,
    }
    try:
        filters = _filters(since, until, labeler)
    except ServiceError as exc:
        return render(request, "admin/quality.html", {**context, "error": exc.message}, 422)
    report = project_report(session, project, filters)
    context.update(
        report=report,
        charts=_charts(report),
        tables={
            name: _sorted(build(report), sort, order == "desc") for name, build in TABLES.items()
        },
        query=request.url.query,
    )
    return render(request, "admin/quality.html", context)


@router.get("/projects/{project_id}/quality/{name}.csv")
def quality_csv(
    project_id: int,
    name: str,
    session: SessionDep,
    _admin: WebAdmin,
    since: str = "",
    until: str = "",
    labeler: LabelerIds = [],  # noqa: B006
) -> Response:
    if name not in TABLES:
        raise NotFound(f"There is no table {name!r}; try one of {', '.join(TABLES)}.")
    project = projects.get_project(session, project_id)
    table = TABLES[name](project_report(session, project, _filters(since, until, labeler)))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c.key for c in table.columns])
    writer.writerows([row[c.key] for c in table.columns] for row in table.rows)
    filename = f"project-{project_id}-{name}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
