"""The API's route class: sync endpoints still run in a worker thread, declared as before."""

import threading

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.exceptions import ResponseValidationError
from fastapi.testclient import TestClient
from pydantic import BaseModel

from app.api.routing import OneHopRoute


class Where(BaseModel):
    thread: int
    echo: str


def app_with_routes() -> FastAPI:
    router = APIRouter(route_class=OneHopRoute)

    @router.get("/loop")
    async def loop_thread() -> int:
        return threading.get_ident()

    @router.get("/sync")
    def sync_endpoint(echo: str) -> Where:
        return Where(thread=threading.get_ident(), echo=echo)

    @router.get("/wrong", response_model=Where)
    def wrong_shape() -> dict[str, str]:
        return {"thread": "not a number"}

    app = FastAPI()
    app.include_router(router)
    return app


def test_a_sync_endpoint_runs_outside_the_event_loop() -> None:
    with TestClient(app_with_routes()) as client:
        loop = client.get("/loop").json()
        where = client.get("/sync", params={"echo": "hi"}).json()
    assert where["thread"] != loop


def test_a_sync_endpoint_keeps_its_parameters_and_response_model() -> None:
    with TestClient(app_with_routes()) as client:
        assert client.get("/sync", params={"echo": "hi"}).json()["echo"] == "hi"
        assert client.get("/sync").status_code == 422  # the query parameter is still required
        with pytest.raises(ResponseValidationError):
            client.get("/wrong")
