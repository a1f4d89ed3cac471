"""The memory budget (neurofl/runs/memory.py): victims are attacked in chunks whose estimate fits
``--max-memory``, with the same result as one chunk; a budget below one victim is refused before
any attack runs; the estimate grows with batch, time steps and victims. No timed tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from neurofl.attacks.recipe import load_recipe
from neurofl.attacks.target import Target
from neurofl.data import load_dataset, split_dataset
from neurofl.errors import UserError
from neurofl.leakage.rows import RowStore, attack_row, chunk_sizes, score_row
from neurofl.leakage.scoring import judge_for
from neurofl.leakage.victims import draw_victims, shared_updates
from neurofl.models import architecture_for, build_model
from neurofl.profiles import load_profile
from neurofl.runs import memory
from neurofl_testing.cli import run_captured


def _target(kind: str = "snn", profile: str = "float32", victims: int = 5, batch: int = 2, seed: int = 0):
    ds = load_dataset("digits")
    splits = split_dataset(ds, seed)
    v = draw_victims(splits.clients, victims, batch, 8, seed)
    prof = load_profile(profile)
    model = build_model(kind, architecture_for(ds.input_shape, ds.classes), prof, seed=seed)
    update = shared_updates(model, v, prof, seed)
    t = Target(model, update, batch, tuple(ds.input_shape), ds.classes, kind, False, prof, splits.auxiliary)
    return ds, splits, v, t


@pytest.fixture
def free_labels(monkeypatch):
    """The row's label recovery (checked apart, below) costs nothing here: the budgets of these tests
    are sized to the recipes' chunks."""
    monkeypatch.setattr(memory, "label_estimate", lambda fp, batch: 0)


def _recipes():
    quick = dataclasses.replace
    return [
        quick(load_recipe("inverting_gradients"), iterations=3),
        quick(load_recipe("detached_ig"), iterations=3),
        quick(load_recipe("disaggregation"), als_iterations=3, search_generations=3),
        quick(load_recipe("learned_inversion"), training_updates=32, epochs=1),
    ]


@pytest.mark.parametrize("kind", ["snn", "ann"])
def test_a_budget_that_forces_several_chunks_gives_the_result_of_one_chunk(tmp_path, kind, free_labels):
    ds, splits, v, t = _target(kind)
    recipes = _recipes()[:3]
    fp = memory.footprint(t.model, t.input_shape)
    one = attack_row(t, recipes, RowStore(tmp_path / "one"), 0, v.y, max_memory=1 << 40)
    many = {}
    for r in recipes:  # each recipe under a budget of two of its victims: chunks of 2, 2 and 1
        small = memory.estimate(t, r, fp).bytes(2)
        assert chunk_sizes(t, [r], small)[r.name] == 2
        many.update(attack_row(t, [r], RowStore(tmp_path / "many"), 0, v.y, max_memory=small))
    judge = judge_for(ds, splits, 0)
    reports = []
    for res in (one, many):
        row, _ = score_row(res, judge, v.x.numpy(), v.y.numpy(), v.index, t.batch)
        for a in row["per_attack"].values():
            a.pop("seconds", None)
        reports.append(row)
    for name in one:
        a, b = one[name], many[name]
        np.testing.assert_allclose(a.images, b.images, rtol=0, atol=1e-5)  # batched float rounding only
        np.testing.assert_allclose(a.loss, b.loss, rtol=1e-4, atol=1e-6)
    _same_report(reports[0], reports[1])


def _same_report(a, b) -> None:
    """Counts, shares of identified samples, verdicts and labels equal; PSNR/SSIM/MSE to 1e-6."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same_report(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same_report(x, y)
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-9, nan_ok=True)
    else:
        assert a == b


def test_learned_inversion_is_attacked_on_the_whole_chunk(free_labels):
    """Its memory is the inverter's training, once per row: a smaller chunk would save nothing, and
    whole it stays bit-identical to runs made before the budget existed."""
    _, _, _, t = _target()
    r = _recipes()[3]
    est = memory.estimate(t, r)
    assert est.fixed > est.per_victim
    assert chunk_sizes(t, [r], est.bytes(t.victims))[r.name] == t.victims
    with pytest.raises(UserError, match="--max-memory"):
        chunk_sizes(t, [r], est.bytes(t.victims) - 1)


def test_a_stochastic_encoding_keeps_the_whole_chunk(free_labels):
    """Under loihi1 (rate encoding) gradient matching draws its spikes from one generator per chunk:
    its chunk cannot shrink, so a budget below the whole chunk is refused, never silently changed."""
    _, _, _, t = _target("snn", "loihi1", victims=3)
    assert memory.stochastic_encoding(t)
    r = dataclasses.replace(load_recipe("inverting_gradients"), iterations=2)
    est = memory.estimate(t, r)
    assert chunk_sizes(t, [r], est.bytes(3))[r.name] == 3
    with pytest.raises(UserError, match="stochastic input encoding"):
        chunk_sizes(t, [r], est.bytes(2))


def test_a_budget_below_one_victim_is_refused_before_any_attack(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_captured(capsys, "attack", "--recipe", "inverting_gradients", "--victims", "2",
                                     "--iterations", "2", "--max-memory", "1M", "--out", str(out))  # fmt: skip
    assert code == 2
    line = err.strip()
    assert "\n" not in line and "--max-memory" in line and "--batch-size" in line and "time steps" in line
    assert not list(out.rglob("chunk_*.npz")) and not list(out.rglob("labels.npz"))


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "inf", "1e400", "4X", "", "1K"])
@pytest.mark.parametrize("command", ["attack", "evaluate", "study"])
def test_bad_max_memory_values_exit_2_with_one_line(capsys, command, value):
    code, _, err = run_captured(capsys, command, "--max-memory", value)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--max-memory" in err


def test_sizes_are_parsed_in_binary_units():
    assert memory.parse_size("4G") == 4 << 30
    assert memory.parse_size("512M") == 512 << 20
    assert memory.parse_size("1.5GiB") == int(1.5 * (1 << 30))
    assert memory.parse_size("2000000") == 2_000_000


def test_the_estimate_grows_with_batch_time_steps_and_victims():
    recipes = _recipes()
    for r in recipes:
        small = memory.estimate(_target(batch=1, victims=2)[3], r)
        big = memory.estimate(_target(batch=4, victims=2)[3], r)
        assert small.bytes(1) <= big.bytes(1), r.name
        assert small.bytes(1) < small.bytes(2) < small.bytes(16), r.name
    prof = load_profile("float32")
    ds = load_dataset("digits")
    arch = architecture_for(ds.input_shape, ds.classes)
    update = {"w": torch.zeros(1, 2, 2)}
    by_steps = []
    for steps in (4, 16, 64):
        p = dataclasses.replace(prof, simulation=dataclasses.replace(prof.simulation, time_steps=steps))
        t = Target(build_model("snn", arch, p, seed=0), update, 1, tuple(ds.input_shape), ds.classes, "snn", False, p)
        by_steps.append(memory.estimate(t, recipes[0]).bytes(1))
    assert by_steps[0] < by_steps[1] < by_steps[2]


def test_row_workers_share_the_budget(monkeypatch):
    monkeypatch.setenv(memory.ENV, str(8 << 30))
    with memory.divided(4):
        assert memory.budget() == 2 << 30
    assert memory.budget() == 8 << 30


def test_the_default_budget_is_a_share_of_the_available_memory(monkeypatch):
    monkeypatch.delenv(memory.ENV, raising=False)
    assert memory.budget() == pytest.approx(memory.DEFAULT_SHARE * memory.available_memory(), rel=0.2)


def test_a_resumed_run_keeps_its_chunk_files(tmp_path, free_labels):
    """The saved files stay keyed by the 16-victim chunk, whatever the budget: a run started under a
    large budget resumes under a small one (and the reverse) from the same files."""
    _, _, v, t = _target(victims=3)
    r = _recipes()[:1]
    store = RowStore(tmp_path)
    first = attack_row(t, r, store, 0, v.y, max_memory=1 << 40)
    assert store.chunk_path(r[0], 0).is_file()
    small = memory.estimate(t, r[0]).bytes(1)
    again = attack_row(t, r, store, 0, v.y, max_memory=small)
    assert np.array_equal(first[r[0].name].images, again[r[0].name].images)
    assert Path(store.chunk_path(r[0], 0)).name == "chunk_0000.npz"


def test_a_finished_row_is_read_back_under_any_budget(tmp_path, free_labels):
    """Nothing is left to compute, so a budget too small for one victim refuses nothing: the saved
    chunks are read back (a finished study re-reported on a smaller machine)."""
    _, _, v, t = _target(victims=3)
    r = _recipes()[:1]
    store = RowStore(tmp_path)
    first = attack_row(t, r, store, 0, v.y, max_memory=1 << 40)
    with pytest.raises(UserError):
        attack_row(t, r, RowStore(tmp_path / "fresh"), 0, v.y, max_memory=1)
    again = attack_row(t, r, store, 0, v.y, max_memory=1)
    assert np.array_equal(first[r[0].name].images, again[r[0].name].images)


def test_attack_under_a_budget_of_two_victims_reports_what_one_chunk_does(tmp_path, capsys, monkeypatch):
    """Through the command: with every recipe estimated at 1 MiB per victim, --max-memory 2M attacks
    3 victims as 2 + 1 and reports what the default budget (one chunk) does."""
    import json

    monkeypatch.setattr(memory, "estimate", lambda *a, **k: memory.Estimate(0, 1 << 20))
    seen: list[int] = []
    real = memory.chunk_size
    monkeypatch.setattr(memory, "chunk_size", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    reports = []
    for limit in ("64G", "2M"):
        code, out, err = run_captured(capsys, "attack", "--recipe", "inverting_gradients", "--victims", "3",
                                      "--iterations", "2", "--max-memory", limit, "--out", str(tmp_path / limit),
                                      "--json")  # fmt: skip
        assert code == 0, err
        report = json.loads(out)["results"][0]
        report.pop("seconds", None)
        for a in report.get("per_attack", {}).values():
            a.pop("seconds", None)
        reports.append(report)
    assert seen == [16, 2]
    _same_report(reports[0], reports[1])


def test_label_recovery_above_the_budget_is_refused_before_any_attack(tmp_path):
    """At batch > 1 the row's labels come from a calibration on probe samples (64 at a time): a
    budget below that is refused in one line before any recipe runs; at batch 1 it costs nothing."""
    _, _, v, t = _target(batch=2, victims=2)
    r = _recipes()[:1]
    need = memory.label_estimate(memory.footprint(t.model, t.input_shape), 2)
    assert need > 0 and memory.label_estimate(memory.footprint(t.model, t.input_shape), 1) == 0
    with pytest.raises(UserError, match="recovering the labels of a batch of 2"):
        attack_row(t, r, RowStore(tmp_path), 0, v.y, max_memory=need - 1)
    assert not list(tmp_path.rglob("*.npz"))


def test_the_footprint_leaves_the_global_generator_as_it_was():
    """A rate-coded model's zero-input pass draws spikes; the global generator's state is restored."""
    ds = load_dataset("digits")
    prof = load_profile("loihi1")  # rate encoding
    model = build_model("snn", architecture_for(ds.input_shape, ds.classes), prof, seed=0)
    torch.manual_seed(11)
    before = torch.get_rng_state()
    memory.footprint(model, tuple(ds.input_shape))
    assert torch.equal(torch.get_rng_state(), before)
