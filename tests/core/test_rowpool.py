"""Rows computed in forked workers equal the rows computed one after another."""

from __future__ import annotations

import os

import pytest
import torch

from neurofl.errors import UserError
from neurofl.pipelines.evaluate import EvaluateConfig, run_evaluate
from neurofl.runs.rowpool import map_rows
from neurofl_testing.reports import without_timing


def _job(i: int, progress) -> tuple[int, int, float]:
    torch.manual_seed(i)
    if progress is not None:
        progress("row", str(i), 1, 1)
    return i, os.getpid(), float(torch.rand(()))


def test_forked_rows_equal_sequential_rows_and_report_progress() -> None:
    seen = []
    par = map_rows(_job, 3, 2, lambda *a: seen.append(a))
    seq = map_rows(_job, 3, 1)
    assert [(i, v) for i, _, v in par] == [(i, v) for i, _, v in seq]
    assert {pid for _, pid, _ in par} - {os.getpid()}  # really other processes
    assert sorted(seen) == [("row", str(i), 1, 1) for i in range(3)]


def _fails(i: int, progress) -> int:
    if i == 1:
        raise UserError("row 1 refuses")
    return i


def test_a_workers_error_reaches_the_caller() -> None:
    with pytest.raises(UserError, match="row 1 refuses"):
        map_rows(_fails, 3, 2)



def test_evaluate_with_two_workers_equals_one(tmp_path) -> None:
    base = dict(victims=2, attack="inverting_gradients", iterations=5, train_epochs=0)
    one = run_evaluate(EvaluateConfig(**base, out=tmp_path / "one", workers=1))
    two = run_evaluate(EvaluateConfig(**base, out=tmp_path / "two", workers=2))
    assert [r["profile"] for r in two["results"]] == ["float32", "float32", "loihi2"]
    assert without_timing(one) == without_timing(two)


def _interrupted(i: int, progress) -> int:
    if i == 2:
        raise KeyboardInterrupt
    return i


def _dies(i: int, progress) -> int:
    if i == 0:
        os._exit(3)  # killed, out of memory: no exception, no message
    return i


def test_an_interrupt_or_a_dead_worker_stops_the_rows_instead_of_hanging() -> None:
    with pytest.raises(KeyboardInterrupt):
        map_rows(_interrupted, 3, 2)
    with pytest.raises(RuntimeError, match="row 0 died"):
        map_rows(_dies, 3, 2)
