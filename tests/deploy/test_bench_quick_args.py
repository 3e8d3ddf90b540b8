"""scripts/bench.sh --quick: every benchmark has quick options, and each bench still accepts them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = (REPO / "scripts" / "bench.sh").read_text()
QUICK = dict(re.findall(r'^\s*\[(\w+)\]="([^"]*)"$', SCRIPT, flags=re.M))
BENCHES = sorted(p.stem for p in (REPO / "bench").glob("*.py"))


def test_every_bench_has_a_quick_entry() -> None:
    # A bench missing here would run at full size under `make bench BENCH_ARGS=--quick`.
    assert sorted(QUICK) == BENCHES


@pytest.mark.parametrize("name", BENCHES)
def test_the_bench_accepts_its_quick_options(name: str) -> None:
    """A bench's options change with it; its quick ones must still be among them."""
    result = subprocess.run([sys.executable, "-P", f"bench/{name}.py", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for option in re.findall(r"--[\w-]+", QUICK.get(name, "")):
        assert re.search(rf"{re.escape(option)}(?![\w-])", result.stdout), f"bench/{name}.py has no {option}"
