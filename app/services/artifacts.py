"""Artifacts for workers that do not share the app's disk: the snapshot and model directories a
claimed job reads, as tar archives to download, and the trained model directory, uploaded as a
tar archive that the app checks (size and sha256) before it unpacks it into the job's run
directory. A worker may only touch the artifacts of a job it holds under its current lease.

Archives are plain tar, not gzip: model weights do not compress, and gzip would cost more time
than it saves. Snapshots and model versions never change, so their archives are made once and
kept under DATA_DIR/.artifact-cache/.

An upload is written to a temporary file; only when it is complete and its checksum matches is
it unpacked (into a temporary directory that then replaces `<run dir>/model` in one rename).
An upload cut off halfway leaves nothing behind and registers nothing; registering the model
is the job's finish, which names the directory. Uploading again replaces an earlier upload.
"""

import hashlib
import os
import secrets
import shutil
import tarfile
import tempfile
from pathlib import Path

from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.models import Job, ModelVersion
from app.schemas.jobs import Storage, UploadOut
from app.services.jobs import resolve_snapshot

STORAGE_ID_FILE = ".storage-id"
CACHE_DIR = ".artifact-cache"
CHUNK = 1 << 20


def storage(data_dir: Path) -> Storage:
    """DATA_DIR and its identity (a random id written once), so that a worker can tell
    whether it sees the same disk."""
    path = data_dir.resolve()
    marker = path / STORAGE_ID_FILE
    if not marker.is_file():
        path.mkdir(parents=True, exist_ok=True)
        temporary = path / f".storage-id.{secrets.token_hex(4)}"
        temporary.write_text(secrets.token_hex(16))
        try:
            os.link(temporary, marker)  # fails if another process wrote it first: keep theirs
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return Storage(path=str(path), storage_id=marker.read_text().strip())


def run_dir(data_dir: Path, job_id: int) -> Path:
    return (data_dir / "jobs" / str(job_id)).resolve()


# --- Downloads ---------------------------------------------------------------------------


def snapshot_archive(data_dir: Path, job: Job) -> tuple[Path, str]:
    """The held job's snapshot directory as a tar archive, and its sha256."""
    if "snapshot" not in job.params:
        raise NotFound(f"Job {job.id} ({job.kind}) has no snapshot.")
    directory = resolve_snapshot(job.params["snapshot"], data_dir)
    key = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    return _archive(data_dir, directory, f"snapshot-{key}")


def model_archive(session: Session, data_dir: Path, job: Job, version_id: int) -> tuple[Path, str]:
    """A model version the held job reads, as a tar archive, and its sha256."""
    if version_id not in job_versions(job):
        raise NotFound(f"Job {job.id} does not use model version {version_id}.")
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise NotFound(f"There is no model version {version_id}.")
    return _archive(data_dir, Path(version.artifact_path), f"model-{version.id}")


def job_versions(job: Job) -> set[int]:
    """The model versions a job reads."""
    params = job.params
    ids = set(params.get("model_version_ids") or [])
    ids.update(params[k] for k in ("model_version_id", "reward_model_version_id") if params.get(k))
    return ids


def _archive(data_dir: Path, directory: Path, name: str) -> tuple[Path, str]:
    if not directory.is_dir():
        raise NotFound(f"{directory} is not on the app's storage any more.")
    cache = data_dir / CACHE_DIR
    target, checksum = cache / f"{name}.tar", cache / f"{name}.tar.sha256"
    if not checksum.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=cache)
        os.close(handle)
        try:
            with tarfile.open(temporary, "w") as tar:
                for path in sorted(directory.iterdir()):
                    tar.add(path, arcname=path.name)
            digest = sha256_file(Path(temporary))
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        checksum.write_text(digest)  # written last: its presence means the archive is whole
    return target, checksum.read_text().strip()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- Uploads -----------------------------------------------------------------------------


class Upload:
    """One model upload being received: bytes go to a temporary file in the job's run
    directory while their sha256 is computed; `finish` checks and unpacks them."""

    def __init__(self, data_dir: Path, job_id: int, declared_bytes: int | None, sha: str):
        self.directory = run_dir(data_dir, job_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.declared, self.expected_sha = declared_bytes, sha.strip().lower()
        handle, name = tempfile.mkstemp(prefix=".upload-", suffix=".tar", dir=self.directory)
        self.path = Path(name)
        self.file = os.fdopen(handle, "wb")
        self.digest, self.received = hashlib.sha256(), 0

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.digest.update(chunk)
        self.received += len(chunk)

    def abort(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)

    def cut_off(self) -> InvalidInput:
        self.abort()
        expected = f" of {self.declared}" if self.declared is not None else ""
        return InvalidInput(
            f"The upload was cut off after {self.received}{expected} bytes. Nothing was "
            "stored; upload the archive again."
        )

    def finish(self) -> UploadOut:
        """Checks size and checksum, unpacks the archive into `<run dir>/model`."""
        self.file.close()
        try:
            if self.declared is not None and self.received != self.declared:
                raise self.cut_off()
            actual = self.digest.hexdigest()
            if actual != self.expected_sha:
                raise InvalidInput(
                    f"The upload's sha256 is {actual}, not {self.expected_sha} as announced: it "
                    "arrived damaged. Nothing was stored; upload the archive again."
                )
            target = self.directory / "model"
            unpacked = _unpack(self.path, self.directory)
            _replace(unpacked, target)
        finally:
            self.path.unlink(missing_ok=True)
        return UploadOut(artifact_path=str(target), sha256=actual, bytes=self.received)


def _unpack(archive: Path, parent: Path) -> Path:
    work = Path(tempfile.mkdtemp(prefix=".model-", dir=parent))
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(work, filter="data")  # no absolute paths, links out or devices
    except (tarfile.TarError, OSError) as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise InvalidInput(f"The upload is not a readable tar archive ({exc}).") from None
    if not (work / "config.json").is_file():
        shutil.rmtree(work, ignore_errors=True)
        raise InvalidInput(
            "The uploaded archive holds no config.json at its top: upload the model directory's "
            "contents. Nothing was stored."
        )
    work.chmod(0o755)  # mkdtemp made it private
    return work


def _replace(new: Path, target: Path) -> None:
    """Puts `new` at `target`; an earlier upload there is moved aside first, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".model-replaced-{secrets.token_hex(4)}")
        os.rename(target, old)
    os.rename(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
