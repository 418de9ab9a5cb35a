"""Workers against the job queue, on loopback: claim latency, double claims, requeue time.

    .venv/bin/python benchmarks/jobs.py [--workers 20] [--jobs 1000] [--database-url URL]

1. migrates a fresh database (SQLite in a temp dir unless --database-url names an empty one),
   inserts the jobs (short SFT jobs; the benchmark plays the workers, nothing is trained) and one
   worker token per worker;
2. starts the server (uvicorn app.asgi:app, as `rankery serve` does) on a free loopback port;
3. N asyncio clients loop: claim → two heartbeats (with a metrics line and a log line) → finish
   with a model directory, until no job waits; every claim's latency is recorded;
4. "kills" a worker: it claims a job with a 2 s lease and stops heartbeating; another worker polls
   claim every 50 ms and the time from the victim's last heartbeat to the reclaim is printed.

Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.db import Database  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.models import Job, ModelVersion  # noqa: E402
from app.services.workers import create_worker  # noqa: E402


def setup(url: str, data_dir: Path, n_jobs: int, n_workers: int) -> tuple[list[str], Path]:
    upgrade(url)
    model = data_dir / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    snapshot = data_dir / "exports" / "bench"
    snapshot.mkdir(parents=True)
    db = Database(url)
    with db.session() as session:
        base = ModelVersion(name="bench-base", kind="base", artifact_path=str(model))
        session.add(base)
        session.flush()
        params = {"snapshot": "bench", "model_version_id": base.id}
        session.add_all(Job(kind="sft", params=params) for _ in range(n_jobs))
        session.commit()
        tokens = [create_worker(session, f"bench-{i}")[1] for i in range(n_workers + 2)]
    db.dispose()
    return tokens, model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(url: str, data_dir: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "RANKERY_DATABASE_URL": url, "RANKERY_DATA_DIR": str(data_dir)}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.asgi:app", "--port", str(port), "--log-level",
         "warning"], env=env, cwd=ROOT,
    )  # fmt: skip
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


async def worker(
    http: httpx.AsyncClient, token: str, model: Path, latencies: list[float], claimed: list[int]
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        started = time.perf_counter()
        response = await http.post("/api/v1/worker/claim", json={}, headers=headers)
        latencies.append(time.perf_counter() - started)
        if response.status_code == 204:
            return
        spec = response.json()
        claimed.append(spec["job_id"])
        path = f"/api/v1/worker/jobs/{spec['job_id']}"
        for step in (1, 2):
            beat = {"lease": spec["lease"], "step": step, "total_steps": 2,
                    "metrics_from": step - 1, "metrics": [{"step": step, "loss": 1.0 / step}],
                    "log": [f"step {step}"]}  # fmt: skip
            (await http.post(f"{path}/heartbeat", json=beat, headers=headers)).raise_for_status()
        # A shared-disk worker: the model goes into the run directory the app named.
        trained = Path(spec["run_dir"]) / "model"
        shutil.copytree(model, trained, dirs_exist_ok=True)
        result = {"artifact_path": str(trained), "metrics": {"loss": 0.5}}
        done = {"lease": spec["lease"], "outcome": "succeeded", "result": result}
        (await http.post(f"{path}/finish", json=done, headers=headers)).raise_for_status()


async def requeue_time(http: httpx.AsyncClient, victim: str, rescuer: str, url: str) -> float:
    db = Database(url)
    with db.session() as session:
        job = session.get(Job, 1)
        assert job is not None
        session.add(Job(kind=job.kind, params=job.params))
        session.commit()
    db.dispose()
    victim_headers = {"Authorization": f"Bearer {victim}"}
    spec = (await http.post("/api/v1/worker/claim", json={"lease_seconds": 2},
                            headers=victim_headers)).json()  # fmt: skip
    beat = {"lease": spec["lease"]}
    await http.post(f"/api/v1/worker/jobs/{spec['job_id']}/heartbeat", json=beat,
                    headers=victim_headers)  # fmt: skip
    killed = time.perf_counter()  # the victim is gone after this heartbeat
    while True:
        response = await http.post(
            "/api/v1/worker/claim", json={}, headers={"Authorization": f"Bearer {rescuer}"}
        )
        if response.status_code == 200:
            assert response.json()["job_id"] == spec["job_id"]
            return time.perf_counter() - killed
        await asyncio.sleep(0.05)


async def run(port: int, tokens: list[str], model: Path, url: str, n_workers: int) -> None:
    latencies: list[float] = []
    claimed: list[int] = []
    limits = httpx.Limits(max_connections=n_workers + 2)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
    ) as http:
        started = time.perf_counter()
        await asyncio.gather(
            *(worker(http, tokens[i], model, latencies, claimed) for i in range(n_workers))
        )
        elapsed = time.perf_counter() - started
        requeue = await requeue_time(http, tokens[-2], tokens[-1], url)
    doubles = sum(1 for count in Counter(claimed).values() if count > 1)
    ms = sorted(x * 1000 for x in latencies)
    print(f"workers: {n_workers}, jobs run: {len(claimed)} in {elapsed:.1f} s "
          f"({len(claimed) / elapsed:.0f} jobs/s, each claim + 2 heartbeats + finish)")  # fmt: skip
    p99 = ms[int(len(ms) * 0.99) - 1]
    print(f"claim latency: p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, "
          f"max {ms[-1]:.1f} ms ({len(ms)} claims)")  # fmt: skip
    print(f"double claims: {doubles}")
    print(f"requeue after a killed worker (2 s lease, rescuer polls every 50 ms): {requeue:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--database-url", help="an empty database (default: SQLite in a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "var"
        url = args.database_url or f"sqlite:///{data_dir / 'bench.db'}"
        tokens, model = setup(url, data_dir, args.jobs, args.workers)
        port = free_port()
        server = start_server(url, data_dir, port)
        try:
            asyncio.run(run(port, tokens, model, url, args.workers))
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
