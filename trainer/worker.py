"""`rankery worker`: claims jobs from the app over HTTP(S), runs them, reports back. It needs no
database access, only the app's URL and a worker token.

Each job runs as a child process: `python -m trainer.STAGE` (or `accelerate launch` when the
job wants more than one GPU and the machine has them) for sft/rm/ppo, `python -m trainer.sample`
for sample and evaluate jobs. While it runs, the worker heartbeats with the progress
(`progress.json`), new lines of `metrics.jsonl` and of the child's output; it stops the child
when the app asks for a cancel or when the lease was lost. A job that comes back after a lost
lease finds its run directory with checkpoints and resumes (`--resume`).

Artifacts: when the worker shares the app's disk (same machine, or a shared volume: the spec's
`storage` id is found at the same path here) it uses the app's paths directly, which is the fast
path: nothing is copied, and a job that moves to another worker resumes from the checkpoints in
the shared run directory. Otherwise (or with `--artifacts http`) it downloads the snapshot and
model directories through the API into `--work-dir` (kept: snapshots and model versions never
change), runs the job there, and uploads the trained model, which the app checks by sha256
before the job's finish registers it. Checkpoints then stay on this machine: a job resumes from
them only when it comes back to the same worker.

Suggest jobs (a labeler waits for them) run in this process with the model kept loaded.
"""

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger("trainer.worker")
REFERENCES = {"snapshot", "model_version_id", "reward_model_version_id"}
SAMPLED = ("sample", "evaluate")  # jobs run by trainer.sample
ERROR_LINES = 30  # output lines kept in a failed job's error
TRANSFER_TRIES = 3
CHUNK = 1 << 20


class LeaseLost(Exception):
    """The app answered 409: this worker no longer holds the job."""


class Api:
    """The worker endpoints of the app's API."""

    def __init__(self, http: httpx.Client, token: str) -> None:
        self.http, self.headers = http, {"Authorization": f"Bearer {token}"}

    @classmethod
    def connect(cls, api_url: str, token: str, timeout: float = 30.0) -> "Api":
        return cls(httpx.Client(base_url=api_url.rstrip("/"), timeout=timeout), token)

    def claim(self, lease_seconds: int, max_gpus: int) -> dict[str, Any] | None:
        body = {"lease_seconds": lease_seconds, "max_gpus": max_gpus}
        response = self._post("/worker/claim", body)
        return None if response.status_code == 204 else response.json()

    def heartbeat(self, job_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return self._post(f"/worker/jobs/{job_id}/heartbeat", body).json()

    def finish(
        self, job_id: int, body: dict[str, Any], retry_seconds: float = 2.0
    ) -> dict[str, Any]:
        """Sent until the app answers: a job's end must not be lost to an app restart (the
        lease decides whether it still counts)."""
        while True:
            try:
                return self._post(f"/worker/jobs/{job_id}/finish", body).json()
            except httpx.TransportError as exc:
                log.warning("job %s: cannot report its end (%s); trying again", job_id, exc)
                time.sleep(retry_seconds)

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        response = self.http.post("/api/v1" + path, json=body, headers=self.headers)
        _check(path, response)
        return response

    def download(self, path: str, lease: str, target: Path) -> Path:
        """Unpacks the tar archive at `path` into `target` (kept when there already: what is
        downloaded never changes). The archive's sha256 is checked; a broken transfer is tried
        again."""
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, TRANSFER_TRIES + 1):
            handle, archive = tempfile.mkstemp(prefix=".download-", dir=target.parent)
            try:
                with os.fdopen(handle, "wb") as f:
                    expected = self._fetch(path, lease, f)
                if expected != _sha256(Path(archive)):
                    raise TransferError(f"{path}: the download arrived damaged")
                unpack(Path(archive), target)
                return target
            except (httpx.TransportError, TransferError) as exc:
                if attempt == TRANSFER_TRIES:
                    raise TransferError(f"{path}: {exc}") from exc
                log.warning("%s (try %d of %d); trying again", exc, attempt, TRANSFER_TRIES)
            finally:
                Path(archive).unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def _fetch(self, path: str, lease: str, f) -> str:  # type: ignore[no-untyped-def]
        url, params = "/api/v1" + path, {"lease": lease}
        with self.http.stream("GET", url, params=params, headers=self.headers) as response:
            if response.status_code >= 400:
                response.read()
                _check(path, response)
            for chunk in response.iter_bytes(CHUNK):
                f.write(chunk)
            return response.headers.get("X-Content-SHA256", "")

    def upload(self, job_id: int, lease: str, directory: Path) -> str:
        """Uploads a model directory as a tar archive; returns where the app put it."""
        path = f"/worker/jobs/{job_id}/model"
        handle, name = tempfile.mkstemp(prefix=".upload-", suffix=".tar", dir=directory.parent)
        os.close(handle)
        archive = Path(name)
        try:
            pack(directory, archive)
            headers = {
                **self.headers,
                "X-Content-SHA256": _sha256(archive),
                "Content-Length": str(archive.stat().st_size),
                "Content-Type": "application/x-tar",
            }
            for attempt in range(1, TRANSFER_TRIES + 1):
                try:
                    with archive.open("rb") as f:
                        response = self.http.put(
                            "/api/v1" + path, params={"lease": lease}, content=f, headers=headers
                        )
                    if response.status_code != 422 and response.status_code < 500:
                        _check(path, response)
                        return response.json()["artifact_path"]
                    error: Exception = TransferError(response.json().get("detail", response.text))
                except httpx.TransportError as exc:
                    error = exc
                if attempt == TRANSFER_TRIES:
                    raise TransferError(f"uploading the model failed: {error}")
                log.warning("upload: %s (try %d of %d); again", error, attempt, TRANSFER_TRIES)
        finally:
            archive.unlink(missing_ok=True)
        raise AssertionError("unreachable")


class TransferError(RuntimeError):
    """An artifact download or upload that failed every try."""


def _check(path: str, response: httpx.Response) -> None:
    if response.status_code == 409:
        raise LeaseLost(response.json().get("detail", "lease lost"))
    if response.status_code >= 400:
        raise RuntimeError(f"{path}: {response.status_code} {response.text}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def pack(directory: Path, archive: Path) -> None:
    """The directory's contents as a plain tar (weights do not compress)."""
    with tarfile.open(archive, "w") as tar:
        for path in sorted(directory.iterdir()):
            tar.add(path, arcname=path.name)


def unpack(archive: Path, target: Path) -> None:
    """Unpacks beside `target`, then renames into place: `target` is complete or absent."""
    work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
        os.rename(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def shares_storage(spec: dict[str, Any]) -> bool:
    """Whether this machine sees the app's DATA_DIR: its random id is at the same path here."""
    storage = spec.get("storage")
    if not storage:
        return False
    try:
        marker = Path(storage["path"]) / ".storage-id"
        return marker.read_text().strip() == storage["storage_id"]
    except OSError:
        return False


def localize(api: Api, spec: dict[str, Any], work_dir: Path) -> dict[str, Any]:
    """The spec with local paths: the job's snapshot and models downloaded into `work_dir`,
    its run directory there too."""
    local = dict(spec)
    job_id, lease = spec["job_id"], spec["lease"]
    base = work_dir.resolve() / spec["storage"]["storage_id"]
    local["run_dir"] = str(base / "jobs" / str(job_id))

    def model(version_id: int | str) -> str:
        path = f"/worker/jobs/{job_id}/models/{version_id}"
        return str(api.download(path, lease, base / "models" / str(version_id)))

    if spec.get("data"):
        key = hashlib.sha256(spec["data"].encode()).hexdigest()[:16]
        path = f"/worker/jobs/{job_id}/snapshot"
        local["data"] = str(api.download(path, lease, base / "snapshots" / key))
    if spec.get("model_version_id") is not None:
        local["model"] = model(spec["model_version_id"])
    if spec.get("reward_model_version_id") is not None:
        local["reward_model"] = model(spec["reward_model_version_id"])
    local["models"] = {v: model(v) for v in spec.get("models", {})}
    return local


@contextlib.contextmanager
def keep_alive(api: Api, job_id: int, lease: str, interval: float) -> Iterator[None]:
    """Heartbeats from a thread while the worker transfers files, so the lease holds."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            with contextlib.suppress(Exception):  # the main thread's next report finds out
                api.heartbeat(job_id, {"lease": lease})

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def serve(
    api: Api,
    once: bool = False,
    poll_seconds: float = 5.0,
    lease_seconds: int = 60,
    gpus: int | None = None,
    work_dir: Path = Path("var/worker"),
    artifacts: str = "auto",
) -> int:
    """Claims and runs jobs until stopped (or, with `once`, until no job waits). Returns the
    number of jobs run. `artifacts`: "auto" (the app's disk when shared, else the API),
    "shared" or "http"."""
    gpus = local_gpus() if gpus is None else gpus
    ran = 0
    while True:
        try:
            spec = api.claim(lease_seconds, max_gpus=max(gpus, 1))
        except httpx.TransportError as exc:  # the app is starting, restarting or unreachable
            log.warning("cannot reach the app (%s); trying again in %.0f s", exc, poll_seconds)
            time.sleep(poll_seconds)
            continue
        if spec is None:
            if once:
                return ran
            time.sleep(poll_seconds)
            continue
        log.info("claimed job %s (%s), attempt %s", spec["job_id"], spec["kind"], spec["attempt"])
        run_job(api, spec, gpus, lease_seconds, work_dir, artifacts)
        ran += 1


def local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


def command(spec: dict[str, Any], gpus: int) -> list[str]:
    """The child process that runs the job."""
    run_dir = Path(spec["run_dir"])
    if spec["kind"] in SAMPLED:
        return [sys.executable, "-m", "trainer.sample", "--spec", str(run_dir / "spec.json"),
                "--out", str(run_dir)]  # fmt: skip
    processes = min(spec["gpus"], gpus)
    launcher = [sys.executable, "-m"]
    if processes > 1:
        accelerate = shutil.which("accelerate") or "accelerate"
        launcher = [accelerate, "launch", "--multi_gpu", "--num_processes", str(processes), "-m"]
    args = [f"trainer.{spec['kind']}", "--data", spec["data"], "--model", spec["model"],
            "--out", str(run_dir)]  # fmt: skip
    for key, value in spec["params"].items():
        if key not in REFERENCES:
            args += ["--set", f"{key}={json.dumps(value)}"]  # JSON values are YAML too
    if spec.get("reward_model"):
        args += ["--reward-model", spec["reward_model"]]
    if any((run_dir / "checkpoints").glob("step-*")):
        args.append("--resume")
    return launcher + args


class _Output:
    """The child's output lines: kept for the log tail and for a failure's message."""

    def __init__(self, stream, logfile: Path) -> None:
        self.new: deque[str] = deque()
        self.last: deque[str] = deque(maxlen=ERROR_LINES)
        self.thread = threading.Thread(target=self._read, args=(stream, logfile), daemon=True)
        self.thread.start()

    def _read(self, stream, logfile: Path) -> None:
        with logfile.open("a", encoding="utf-8") as f:
            for line in stream:
                f.write(line)
                self.new.append(line.rstrip("\n"))
                self.last.append(line.rstrip("\n"))

    def drain(self) -> list[str]:
        lines = []
        while self.new:
            lines.append(self.new.popleft())
        return lines


def run_job(
    api: Api,
    spec: dict[str, Any],
    gpus: int,
    lease_seconds: int,
    work_dir: Path = Path("var/worker"),
    artifacts: str = "auto",
) -> str:
    """Runs one claimed job to its end; returns the outcome reported (or "lost")."""
    job_id, lease = spec["job_id"], spec["lease"]
    interval = max(0.2, min(lease_seconds / 4, 10.0))
    remote = artifacts == "http" or (artifacts == "auto" and not shares_storage(spec))
    try:
        if remote:
            with keep_alive(api, job_id, lease, interval):
                spec = localize(api, spec, work_dir)
        if spec["kind"] == "suggest":
            return run_suggestion(api, spec)
        return _run_child(api, spec, gpus, interval, remote)
    except LeaseLost as exc:
        log.warning("job %s: %s", job_id, exc)
        return "lost"
    except TransferError as exc:
        api.finish(job_id, {"lease": lease, "outcome": "failed", "error": str(exc)})
        return "failed"


def run_suggestion(api: Api, spec: dict[str, Any]) -> str:
    """A labeler's dialogue suggestion, generated in this process."""
    from trainer.suggest import reply

    job_id, lease = spec["job_id"], spec["lease"]
    try:
        text = reply(spec["model"], spec["params"])
    except Exception as exc:
        log.exception("suggestion %s failed", job_id)
        api.finish(job_id, {"lease": lease, "outcome": "failed", "error": repr(exc)})
        return "failed"
    api.finish(job_id, {"lease": lease, "outcome": "succeeded", "result": {"text": text}})
    return "succeeded"


def _run_child(api: Api, spec: dict[str, Any], gpus: int, interval: float, remote: bool) -> str:
    job_id, lease = spec["job_id"], spec["lease"]
    run_dir = Path(spec["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "spec.json").write_text(json.dumps(spec))
    argv = command(spec, gpus)
    log.info("job %s: %s", job_id, " ".join(argv))
    child = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=_stop_with(os.getpid()) if sys.platform == "linux" else None,
    )
    output = _Output(child.stdout, run_dir / f"attempt-{spec['attempt']}.log")
    metrics = _MetricsTail(run_dir / "metrics.jsonl")
    unsent: dict[str, Any] | None = None
    try:
        while True:
            finished = _wait(child, interval)
            if finished:
                output.thread.join(timeout=5)
            report = _report(lease, run_dir, metrics, output, unsent)
            try:
                reply = api.heartbeat(job_id, report)
            except httpx.TransportError as exc:
                # The app is restarting or unreachable: the job goes on, and this report's log
                # lines and metrics go with the next heartbeat. If the lease runs out meanwhile,
                # the app answers 409 once it is back.
                log.warning("job %s: cannot reach the app (%s); the job goes on", job_id, exc)
                unsent = report
                if finished:
                    time.sleep(interval)
                continue
            unsent = None
            if reply["cancel_requested"]:
                _stop(child)
                api.finish(job_id, {"lease": lease, "outcome": "cancelled"})
                return "cancelled"
            if finished:
                break
    except LeaseLost:
        _stop(child)
        raise
    if child.returncode != 0:
        error = "\n".join(output.last) or f"the job's process exited with {child.returncode}"
        api.finish(job_id, {"lease": lease, "outcome": "failed", "error": error})
        return "failed"
    result = _result(spec, run_dir, metrics)
    if remote and spec["kind"] not in SAMPLED:
        with keep_alive(api, job_id, lease, interval):
            result["artifact_path"] = api.upload(job_id, lease, run_dir / "model")
    try:
        api.finish(job_id, {"lease": lease, "outcome": "succeeded", "result": result})
    except RuntimeError as exc:  # the app refused the result: report why, as a failure
        api.finish(job_id, {"lease": lease, "outcome": "failed", "error": str(exc)})
        return "failed"
    return "succeeded"


class _MetricsTail:
    """New lines of metrics.jsonl since the last report, with their position in the file."""

    def __init__(self, path: Path) -> None:
        self.path, self.sent = path, None  # None: nothing sent yet, send from the start
        self.records: list[dict[str, Any]] = []

    def new_lines(self) -> tuple[int, list[dict[str, Any]]] | None:
        if not self.path.exists():
            return None
        lines = self.path.read_text(encoding="utf-8").splitlines()
        complete = [json.loads(line) for line in lines if line.endswith("}")]
        self.records = complete
        start = self.sent or 0
        if self.sent is not None and len(complete) <= start:
            return None
        self.sent = len(complete)
        return start, complete[start:]

    def final(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for record in self.records:
            merged.update({k: v for k, v in record.items() if k != "step"})
        return merged


def _report(
    lease: str,
    run_dir: Path,
    metrics: _MetricsTail,
    output: _Output,
    unsent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The heartbeat's body; with `unsent`, a report that never reached the app, it carries
    that report's log lines and metrics too."""
    body: dict[str, Any] = {
        "lease": lease,
        "log": [*(unsent or {}).get("log", []), *output.drain()],
    }
    if unsent and "metrics_from" in unsent:
        metrics.sent = unsent["metrics_from"]
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        body.update(json.loads((run_dir / "progress.json").read_text()))
    new = metrics.new_lines()
    if new is not None:
        body["metrics_from"], body["metrics"] = new
    return body


def _result(spec: dict[str, Any], run_dir: Path, metrics: _MetricsTail) -> dict[str, Any]:
    if spec["kind"] in SAMPLED:
        return json.loads((run_dir / "samples.json").read_text())
    metrics.new_lines()
    return {"artifact_path": str(run_dir / "model"), "metrics": metrics.final()}


PR_SET_PDEATHSIG = 1


def _stop_with(worker_pid: int):  # type: ignore[no-untyped-def]
    """Runs in the job's process before it starts: when the worker dies, even by SIGKILL, the
    kernel sends the job SIGTERM. An orphaned job would go on writing checkpoints into the run
    directory that the next worker resumes from."""

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it

    def stop_with_worker() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != worker_pid:  # the worker died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return stop_with_worker


def _wait(child: subprocess.Popen, seconds: float) -> bool:
    try:
        child.wait(timeout=seconds)
        return True
    except subprocess.TimeoutExpired:
        return False


def _stop(child: subprocess.Popen) -> None:
    child.terminate()
    try:
        child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
