"""One helper decides between the full page and the block an htmx request asked for."""

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2_fragments.fastapi import Jinja2Blocks
from markdown_it import MarkdownIt
from markupsafe import Markup

from app.deps import csrf_token
from app.schemas.labeling import CATEGORIES, FLAGS, PROMPT_KINDS, SKIP_REASONS

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
templates = Jinja2Blocks(directory=str(TEMPLATES_DIR))
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False})


def markdown(text: str) -> Markup:
    """Guidelines are markdown; raw HTML in them is escaped, never rendered."""
    return Markup(_markdown.render(text or ""))


def percent(share: float) -> str:
    return f"{share * 100:.1f} %"


templates.env.filters["markdown"] = markdown
templates.env.filters["percent"] = percent
templates.env.globals.update(
    CATEGORIES=CATEGORIES, FLAGS=FLAGS, PROMPT_KINDS=PROMPT_KINDS, SKIP_REASONS=SKIP_REASONS
)


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    block: str | None = None,
) -> HTMLResponse:
    """Render a page, or only `block` of it when htmx asks for that block."""
    context = dict(context or {})
    context.setdefault("user", getattr(request.state, "user", None))
    context["csrf_token"] = csrf_token(request)
    context["flashes"] = request.session.pop("flashes", [])
    wants_block = block if request.headers.get("HX-Request") == "true" else None
    return templates.TemplateResponse(
        request, template, context, status_code=status_code, block_name=wants_block
    )


def flash(request: Request, message: str, kind: str = "info") -> None:
    request.session.setdefault("flashes", []).append({"kind": kind, "message": message})
