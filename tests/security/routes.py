"""The app's route table, flattened, and the access rule each route declares: the intersection
of the guards among its dependencies (app/deps.py GUARDS), everyone for a route listed in PUBLIC,
None for a route that declares nothing."""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from app.deps import GUARDS, PRINCIPALS

EVERYONE = frozenset(PRINCIPALS)
# (method, path) of the routes anyone may call; "*" for every method of a path.
PUBLIC = {
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/healthz"),
    ("GET", "/api/v1/health"),
    ("*", "/openapi.json"),
    ("*", "/static"),
}
UNKNOWN_ID = "987654"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    dependant: Dependant | None  # None for plain Starlette routes and mounts

    @property
    def url(self) -> str:
        """The path with an id no object has, so that no call changes existing data."""
        if self.path == "/static":
            return "/static/app.css"
        return re.sub(r"\{(\w+)(:\w+)?\}", UNKNOWN_ID, self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def endpoints(app: FastAPI) -> list[Endpoint]:
    """One Endpoint per method of every route in the app's table, included routers flattened
    (their prefixes and router-level dependencies applied); mounts answer GET."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        methods = ["GET"] if isinstance(route, Mount) else sorted(context.methods or [])
        dependant = getattr(context, "dependant", None)
        found += [Endpoint(m, context.path or "", dependant) for m in methods if m != "HEAD"]
    return found


def _calls(dependant: Dependant) -> Iterable[object]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def declared_rule(endpoint: Endpoint) -> frozenset[str] | None:
    """Who may call the endpoint: the intersection of its guards, everyone for a public one,
    None when it declares nothing."""
    if ("*", endpoint.path) in PUBLIC or (endpoint.method, endpoint.path) in PUBLIC:
        return EVERYONE
    if endpoint.dependant is None:
        return None
    guards = [GUARDS[call] for call in _calls(endpoint.dependant) if call in GUARDS]
    return frozenset.intersection(*guards) if guards else None
