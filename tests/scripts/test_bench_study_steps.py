"""scripts/bench_study_steps.py: the library's steps agree with the earlier ones (the matching step's
input gradient to float rounding, the label solve's labels exactly), the earlier ones are restored
after each timing, and the ratio is written."""

from __future__ import annotations

import json
import sys


def test_the_benchmark_compares_both_variants_and_writes_the_ratio(load_script, monkeypatch, tmp_path):
    bench = load_script("bench_study_steps")
    out = tmp_path / "b.json"
    monkeypatch.setattr(sys, "argv", ["bench", "--repeats", "1", "--victims", "1", "--out", str(out)])
    bench.main()
    data = json.loads(out.read_text())
    step, solve = data["results"]["conv_matching_step"], data["results"]["label_solve"]
    assert 0 <= step["max_relative_difference"] < 1e-5
    assert solve["labels_equal"] is True
    for name, r in data["results"].items():
        assert r["library_cpu_seconds"] > 0 and r["before_cpu_seconds"] > 0
        assert data[f"ratio {name}, before / library (CPU s)"] == r["before_over_library_cpu"]
    from neurofl.attacks import labels

    assert labels.reduced_nnls is bench.REDUCED  # the library's solve is back
