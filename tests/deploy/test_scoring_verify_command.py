"""`yardstick scoring verify YEAR` as docs/operations.md gives it: a real process on a migrated SQLite database;
its exit status says verified (0), differences (1) or a year not finalized, with nothing to verify (2)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
YARDSTICK = str(Path(sys.executable).parent / "yardstick")


def yardstick(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARDSTICK_")}
    return subprocess.run([YARDSTICK, *args], capture_output=True, text=True, timeout=180, cwd=REPO,
                          env={**env, "YARDSTICK_DATA_DIR": str(data_dir)})


def test_verify_a_year_not_finalized_says_only_that(tmp_path: Path) -> None:
    assert yardstick("migrate", "scoring", data_dir=tmp_path).returncode == 0
    with sqlite3.connect(tmp_path / "scoring.db") as conn:  # a live year and an unknown one alike
        conn.execute("INSERT INTO years (year, version, status) VALUES (2026, 1, 'live')")
    for year in ("2025", "2026"):
        out = yardstick("scoring", "verify", year, data_dir=tmp_path)
        assert out.returncode == 2, out.stderr
        assert out.stdout == f"{year}: not finalized, nothing to verify\n"
        assert "difference" not in out.stdout + out.stderr


def test_verify_a_final_year_that_differs_exits_1(tmp_path: Path) -> None:
    assert yardstick("migrate", "scoring", data_dir=tmp_path).returncode == 0
    with sqlite3.connect(tmp_path / "scoring.db") as conn:  # final, but its digest matches no inputs
        conn.execute("INSERT INTO years (year, version, status, digest) VALUES (2025, 1, 'final', 'x')")
    out = yardstick("scoring", "verify", "2025", data_dir=tmp_path)
    assert out.returncode == 1, out.stderr
    assert out.stdout.startswith("2025: ") and out.stdout.endswith("difference(s)\n")
    assert "digest of the stored inputs" in out.stderr
