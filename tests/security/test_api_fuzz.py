"""Schemathesis over the whole OpenAPI schema: requests built from the schema (valid and
deliberately invalid), each operation sent as the callers its access rule admits (an admin, a
labeler, a worker; the access matrix covers everyone else), bounded and derandomized so that the
run is short and repeatable. No response may be a server error; every 4xx says what was wrong in
`detail`; every response matches what the schema promises (status, content type, body)."""

from dataclasses import dataclass, field

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import (
    bearer,
    make_project,
    make_prompt,
    make_ranking_item,
    make_user,
    make_worker,
)
from tests.security.conftest import FIGURES
from tests.security.routes import declared_rule, endpoints

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES = {GenerationMode.POSITIVE: 10, GenerationMode.NEGATIVE: 5}
# Bodies that are files (workers' model archives, admins' JSONL imports) go as raw bytes.
schemathesis.serializer.alias("application/x-tar", "application/octet-stream")
schemathesis.serializer.alias("application/x-ndjson", "application/octet-stream")


@dataclass
class FuzzRun:
    requests: int = 0
    server_errors: int = 0
    problems: list[str] = field(default_factory=list)


def _problem(case, response) -> str | None:  # type: ignore[no-untyped-def]
    """Our own rule on top of the schema's: a refusal names its reason."""
    if 400 <= response.status_code < 500:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = None
        if not detail:
            return f"{case.method} {case.formatted_path}: {response.status_code} without a detail"
    return None


def fuzz(app_client, callers: dict[str, dict[str, str]]) -> FuzzRun:  # type: ignore[no-untyped-def]
    """Every operation, as each of `callers` (name: Authorization header) that may call it."""
    run = FuzzRun()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app_client.app)
    rules = {(e.method, e.path): declared_rule(e) for e in endpoints(app_client.app)}
    for result in schema.get_all_operations():
        operation = result.ok()
        allowed = rules[(operation.method.upper(), operation.path)] or frozenset()
        for name, headers in callers.items():
            if name in allowed:
                _fuzz_operation(app_client, operation, headers, run)
    return run


def _fuzz_operation(app_client, operation, headers: dict[str, str], run: FuzzRun) -> None:  # type: ignore[no-untyped-def]
    for mode, examples in EXAMPLES.items():

        @settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
        def send(case) -> None:  # type: ignore[no-untyped-def]
            kwargs = case.as_transport_kwargs(headers=headers)
            kwargs.pop("base_url", None)
            if not kwargs.get("cookies"):
                kwargs.pop("cookies", None)
            response = app_client.request(**kwargs)
            run.requests += 1
            if response.status_code >= 500:
                run.server_errors += 1
                run.problems.append(
                    f"{case.method} {case.formatted_path}: {case.as_curl_command()}"
                )
            if problem := _problem(case, response):
                run.problems.append(problem)
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except FailureGroup as failure:
                run.problems.append(f"{case.method} {case.formatted_path}: {failure}")

        try:
            send()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to break in this operation


def test_the_api_answers_generated_requests_as_its_schema_says(
    app_client, session, database_url: str
) -> None:
    project = make_project(session)
    make_ranking_item(session, project)
    make_prompt(session, project, make_user(session))
    callers = {
        "admin": bearer(session, make_user(session, "admin")),
        "labeler": bearer(session, make_user(session)),
        "worker": make_worker(session)[1],
    }

    run = fuzz(app_client, callers)

    FIGURES.append(
        f"api fuzzing ({database_url.split(':')[0]}, as {', '.join(callers)}): "
        f"{run.requests} requests, {run.server_errors} 5xx, {len(run.problems)} other problems"
    )
    assert run.problems == [], "\n\n".join(run.problems)
