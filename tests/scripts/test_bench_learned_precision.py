"""scripts/bench_learned_precision.py: each case times one training step in both precisions and
writes their ratio, with the CPU's bfloat16 support recorded."""

from __future__ import annotations

import json
import sys


def test_the_benchmark_writes_both_precisions_and_their_ratio(load_script, monkeypatch, tmp_path):
    bench = load_script("bench_learned_precision")
    monkeypatch.setattr(bench, "CASES", {"tiny/batch2": (2, 12, 3)})
    monkeypatch.setattr(bench, "FEATURES", 9)
    monkeypatch.setattr(bench, "HIDDEN", 16)
    out = tmp_path / "b.json"
    monkeypatch.setattr(sys, "argv", ["bench", "--repeats", "1", "--out", str(out)])
    bench.main()
    data = json.loads(out.read_text())
    r = data["results"]["tiny/batch2"]
    assert r["float32_seconds"] > 0 and r["bfloat16_seconds"] > 0
    assert data["ratio tiny/batch2, float32 / bfloat16"] == r["float32_over_bfloat16"]
    assert isinstance(data["machine"]["avx512_bf16"], bool)
