"""scripts/bench_study.py's record (no study is run here: the studies are given): a run's study.json
is compared with the baseline's and, with ``--compare``, with an earlier run's, timings left out."""

from __future__ import annotations

import argparse
import json


def _study(score: float, wall: float) -> dict:
    cell = {"batch": 1, "wall_seconds": wall, "rows": [{"iip": score}]}
    datasets = [{"dataset": "digits", "cells": [cell]}]
    return {"execution": {"where": "somewhere", "wall_seconds": wall}, "datasets": datasets}


def test_the_record_compares_without_timings(tmp_path, load_script) -> None:
    bench = load_script("bench_study")
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps(_study(0.5, 4000.0)))
    args = argparse.Namespace(datasets="digits", batches="1", victims=4, iterations=None, train_epochs=0,
                              attack="suite_study", profiles="loihi2", repeats=1, compare=earlier,
                              out=tmp_path / "bench.json")  # fmt: skip
    run = {"wall_seconds": 60.0, "tasks": {"computed": 1, "total": 1}}
    same, other = bench.without_timing(_study(0.5, 10.0)), bench.without_timing(_study(0.25, 10.0))
    bench.write(args, ["cluster2"], {"cluster2": [run]}, {"cluster2": [same]})
    d = json.loads(args.out.read_text())
    assert d["identical_to_baseline_apart_from_timings"] == {"cluster2": True}
    assert d["compared_with"]["identical_apart_from_timings"] == {"cluster2": True}
    assert d["compared_with"]["execution"]["wall_seconds"] == 4000.0
    bench.write(args, ["cluster2"], {"cluster2": [run]}, {"cluster2": [other]})
    assert json.loads(args.out.read_text())["compared_with"]["identical_apart_from_timings"] == {"cluster2": False}
