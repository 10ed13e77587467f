"""The API freezes what its start-up made out of the garbage collector's passes, once per process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.processes import REPO_ROOT

# In a fresh interpreter: this test process may hold a frozen generation already.
SCRIPT = """
import gc, sys
from pathlib import Path
from fastapi.testclient import TestClient
from app.main import create_app
from app.settings import Settings

freezes = []
freeze = gc.freeze
gc.freeze = lambda: (freezes.append(1), freeze())[1]
folder = Path(sys.argv[1])
settings = Settings(database_url=f"sqlite:///{folder / 'trainq.db'}", artifacts_dir=folder / "artifacts")
counts = [gc.get_freeze_count()]
for _ in range(2):
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        counts.append(gc.get_freeze_count())
print(*counts, len(freezes))
"""


def test_start_up_objects_are_frozen_once_per_process(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    before, first, _, freezes = (int(count) for count in result.stdout.split())
    assert before == 0
    # Every module, route and schema start-up made: tens of thousands of objects.
    assert first > 10_000
    # A second app in the process (as in tests) does not freeze again.
    assert freezes == 1
