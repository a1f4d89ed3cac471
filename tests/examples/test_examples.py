"""examples/*.py run on the public API: each finishes with --quick and writes its output file.

Each runs in a fresh interpreter (as a user runs it) from an unrelated working folder, so an example
that depended on the checkout's folder or on this test process's imports would fail here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(name: str, cwd: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", "--out", str(out)],
        cwd=cwd, env=env, capture_output=True, text=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    "name,output",
    [
        ("evaluate_profile.py", "report.json"),
        ("attack_captured.py", "attack/report.json"),
        ("export_verify.py", "verify.json"),
    ],
)
def test_example_runs_quick(tmp_path, name, output):
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    out = tmp_path / "out"
    done = _run(name, cwd, out)
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout}\n{done.stderr[-3000:]}"
    path = out / output
    assert path.is_file(), f"{name} wrote no {output}:\n{done.stdout}"
    data = json.loads(path.read_text())
    if name == "export_verify.py":
        assert data["spike_agreement"] == 1.0 and data["samples"] == 4
    else:
        assert data["results"], "a report with no rows"
        assert all("iip" in row and "asr" in row for row in data["results"])
    assert f"wrote {path}" in done.stdout
    assert not any(cwd.iterdir()), "an example wrote into its working folder"


def test_examples_are_the_three_documented():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == [
        "attack_captured.py", "evaluate_profile.py", "export_verify.py",
    ]  # fmt: skip
