"""The audit log page (admins): filters by actor, action and day, pages back through older
entries, and downloads the filtered log as CSV."""

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.deps import SessionDep, WebAdmin
from app.errors import ServiceError, validated
from app.schemas.audit import AuditFilter
from app.services import audit
from app.web.render import render

router = APIRouter(prefix="/admin/audit", include_in_schema=False)
FILTER_FIELDS = ("actor", "action", "since", "until")
PAGE_FIELDS = (*FILTER_FIELDS, "limit")


def _values(request: Request, fields: tuple[str, ...]) -> dict[str, str]:
    """The query's fields that are filled in (an empty select means "any")."""
    return {n: v for n in fields if (v := request.query_params.get(n, "").strip())}


@router.get("")
def audit_page(request: Request, session: SessionDep, _admin: WebAdmin) -> Response:
    values = _values(request, (*PAGE_FIELDS, "before_id"))
    context: dict[str, object] = {
        "values": values,
        "actions": audit.ACTIONS,
        "actors": audit.actor_names(session),
        "entries": [],
        "older": None,
        "error": None,
    }
    same_filters = {n: v for n, v in values.items() if n in PAGE_FIELDS}
    context["query"] = urlencode(same_filters)
    try:
        page = audit.list_entries(session, validated(AuditFilter, values))
    except ServiceError as exc:
        context["error"] = exc.message
        return render(request, "admin/audit.html", context, exc.status_code)
    context["entries"] = page.entries
    if page.next_before_id is not None:
        context["older"] = urlencode({**same_filters, "before_id": page.next_before_id})
    return render(request, "admin/audit.html", context)


@router.get(".csv")
def audit_csv(request: Request, session: SessionDep, _admin: WebAdmin) -> Response:
    text = audit.to_csv(session, validated(AuditFilter, _values(request, FILTER_FIELDS)))
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="rankery-audit-log.csv"'},
    )
