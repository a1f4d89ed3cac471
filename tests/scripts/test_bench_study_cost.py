"""scripts/bench_study_cost.py: the recorded attack seconds add up, each cell counts once (the first
folder given wins), and the default study's missing cells are named."""

from __future__ import annotations

import json
import sys

import pytest


def _cell(root, dataset: str, batch: int, seconds: dict[str, dict[str, float]]) -> None:
    folder = root / dataset / f"batch{batch}"
    folder.mkdir(parents=True)
    results = [{"model": row.split("@")[0], "profile": row.split("@")[1],
                "per_attack": {a: {"seconds": s} for a, s in per.items()} | {"rgap": "not applicable"}}
               for row, per in seconds.items()]  # fmt: skip
    (folder / "report.json").write_text(json.dumps({"victims": 4, "results": results}))


def test_seconds_add_up_and_a_cell_counts_once(tmp_path, load_script, monkeypatch) -> None:
    bench = load_script("bench_study_cost")
    first, second = tmp_path / "a", tmp_path / "b"
    _cell(first, "digits", 4, {"ann@float32": {"idlg": 2.0, "learned_inversion": 10.0}, "snn@loihi2": {"idlg": 3.0}})
    _cell(second, "digits", 4, {"ann@float32": {"idlg": 1000.0}})  # the same cell again: not counted
    _cell(second, "faces", 16, {"snn@loihi2": {"learned_inversion": 5.0}})
    out = tmp_path / "cost.json"
    monkeypatch.setattr(sys, "argv", ["bench_study_cost.py", str(first), str(second), "--out", str(out)])
    assert bench.main() == 0
    d = json.loads(out.read_text())
    assert d["total_attack_seconds"] == pytest.approx(20.0)
    assert d["by_attack"]["learned_inversion"]["seconds"] == pytest.approx(15.0)
    assert sum(v["share"] for v in d["by_attack"].values()) == pytest.approx(1.0, abs=2e-3)
    assert d["cells"]["digits/batch4"]["by_row"] == {"ann@float32": 12.0, "snn@loihi2": 3.0}
    assert d["by_batch"] == {"4": {"seconds": 15.0, "share": 0.75}, "16": {"seconds": 5.0, "share": 0.25}}
    missing = d["default_study"]["missing"]
    assert "digits/batch4" not in missing and "faces/batch16" not in missing and len(missing) == 10


def test_no_cells_is_an_error(tmp_path, load_script, monkeypatch) -> None:
    bench = load_script("bench_study_cost")
    monkeypatch.setattr(sys, "argv", ["bench_study_cost.py", str(tmp_path)])
    assert bench.main() == 2
