"""scripts/bench_spike_shifts.py: both variants give the same numbers bit for bit, and their timing
ratio is written."""

from __future__ import annotations

import json
import sys


def test_the_benchmark_checks_equality_and_writes_the_ratio(load_script, monkeypatch, tmp_path):
    bench = load_script("bench_spike_shifts")
    monkeypatch.setattr(bench, "POPULATION", 2)
    out = tmp_path / "b.json"
    monkeypatch.setattr(sys, "argv", ["bench", "--repeats", "1", "--victims", "1", "--out", str(out)])
    bench.main()
    data = json.loads(out.read_text())
    for name in ("conv_matching_step", "mlp_signal"):
        r = data["results"][name]
        assert r["equal"] is True and r["fill_free_cpu_seconds"] > 0
        assert data[f"ratio {name}, padded / fill_free (CPU s)"] == r["padded_over_fill_free_cpu"]
