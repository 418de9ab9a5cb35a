"""Crash safety: a real server process (uvicorn, as `rankery serve` runs it) is killed with
SIGKILL and restarted while simulated labelers rank, write demonstrations and write prompts
through the API, resending every unanswered request unchanged. Whatever they were told was
stored is in the database once, exactly as sent. The harness is benchmarks/crash.py, which
also runs longer as a benchmark."""

from pathlib import Path

from benchmarks.crash import CrashConfig, run_crash

# Bounded: about half a minute per database on two busy cores (a restart takes 2-4 s of it).
CONFIG = CrashConfig(labelers=6, duration=20, kills=3, items=300, prompts=80)


def test_killing_the_server_loses_doubles_and_alters_nothing_acknowledged(
    database_url: str, tmp_path: Path
) -> None:
    report = run_crash(database_url, tmp_path, CONFIG)

    assert report.kills == CONFIG.kills and report.retries > 0
    assert all(report.acknowledged.values()), report.acknowledged  # every kind was stored
    assert report.lost == []
    assert report.duplicated == []
    assert report.altered == []
    assert report.unacknowledged == [] and report.unresolved == 0
    assert not report.errors, report.error_samples
