import httpx

from trainer.worker import Api, serve


def test_a_worker_waits_for_an_app_it_cannot_reach_yet() -> None:
    calls = []

    def app(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(204)

    api = Api(httpx.Client(base_url="http://app", transport=httpx.MockTransport(app)), "token")
    assert serve(api, once=True, poll_seconds=0, gpus=0) == 0
    assert calls == ["/api/v1/worker/claim"] * 2
