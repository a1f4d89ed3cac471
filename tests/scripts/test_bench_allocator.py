"""scripts/bench_allocator.py: each variant runs in its own process under its policy, both compute the
same bits, and the ratio is written."""

from __future__ import annotations

import json
import sys

import pytest

from neurofl.runs.allocator import on_glibc


def test_the_benchmark_runs_each_policy_in_its_own_process(load_script, monkeypatch, tmp_path):
    if not on_glibc():
        pytest.skip("the policy is glibc's")
    bench = load_script("bench_allocator")
    out = tmp_path / "b.json"
    monkeypatch.setattr(sys, "argv", ["bench", "--repeats", "1", "--steps", "1", "--victims", "1",
                                      "--cases", "conv_matching_step", "--out", str(out)])  # fmt: skip
    bench.main()
    data = json.loads(out.read_text())
    (row,) = data["results"].values()
    assert row["policy_in_effect"] is True and row["outputs_equal"] is True
    assert row["kept_wall_seconds"] > 0 and row["glibc_default_wall_seconds"] > 0
    assert data["ratio conv_matching_step, glibc default / kept (wall s)"] == row["default_over_kept_wall"]
