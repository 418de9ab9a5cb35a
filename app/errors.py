"""Errors raised by services; the web and API layers turn them into responses."""

from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ServiceError(Exception):
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServiceError):
    status_code = 422


class NotFound(ServiceError):
    status_code = 404


class Forbidden(ServiceError):
    status_code = 403


class Conflict(ServiceError):
    status_code = 409


class NeedsConfirmation(Conflict):
    """The input is acceptable once the person confirms the warnings (a duplicate prompt,
    personal data): nothing was stored."""

    def __init__(self, warnings: list[str]) -> None:
        super().__init__(
            "Check this before saving: " + " ".join(warnings) + " Edit the prompt, or confirm "
            "to save it as it is (prompts with personal data wait for an admin's review)."
        )
        self.warnings = warnings


class TooManyAttempts(ServiceError):
    status_code = 429


def describe_validation_error(exc: ValidationError) -> str:
    """A pydantic error as one readable sentence per problem, naming the field."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"] if p != "__root__")
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def validated(model: type[M], data: object) -> M:
    """Validate data into a pydantic model, raising InvalidInput with a readable message."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None
