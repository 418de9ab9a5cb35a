"""Long-running processes leave their start-up heap out of the garbage collector's full
collections (app/runtime.py)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_served_app_has_frozen_its_start_up_heap(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "RANKERY_DATABASE_URL": f"sqlite:///{tmp_path / 'rankery.db'}",
        "RANKERY_DATA_DIR": str(tmp_path),
    }
    probe = "import gc, app.asgi; print(gc.get_freeze_count())"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 10_000  # the modules, mappers and schemas of the app
