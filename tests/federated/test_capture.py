"""Captured updates: file round trip, and that they are exactly what an attacker should see."""

import pytest
import torch

from neurofl.errors import UserError
from neurofl.federated.capture import load_captured
from neurofl.federated.engine import run_local
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.models import build_model
from neurofl.profiles import load_profile

from .conftest import task_for


def _rebuild(item):
    model = build_model(item.model_kind, item.arch, load_profile(item.profile), seed=123)
    model.load_state_dict(item.state_dict)
    return model


@pytest.mark.parametrize("kind", ["ann", "snn"])
def test_captured_gradient_is_the_true_batch_gradient(tiny, tmp_path, kind: str) -> None:
    task = task_for(
        tiny, kind, "float32", clients=5, rounds=3, batch=4, capture_rounds=[1, 3], capture_clients=2
    )
    run_local(task, tmp_path)
    items = load_captured(tmp_path / "updates")
    assert [(c.round, c.client) for c in items] == [(1, 0), (1, 1), (3, 0), (3, 1)]
    for item in items:
        assert item.kind == "gradient" and item.batch == 4 and item.true_inputs.shape == (4, 1, 4, 4)
        # independent check: recompute from the recorded global model and the client's true batch
        ref = per_sample_gradients(_rebuild(item), item.true_inputs, item.true_labels, group=item.batch)
        for name, g in item.update.items():
            assert g.shape == ref[name].shape
            torch.testing.assert_close(g, ref[name], rtol=1e-4, atol=1e-6)
    # later rounds start from a different (trained) global model
    assert not torch.equal(
        items[0].state_dict[next(iter(items[0].update))], items[2].state_dict[next(iter(items[2].update))]
    )


def test_secagg_capture_is_the_aggregate_of_k_clients_as_one_batch(tiny, tmp_path) -> None:
    task = task_for(
        tiny,
        "ann",
        "float32",
        clients=8,
        rounds=1,
        fraction=0.5,
        batch=3,
        defense="secagg",
        capture_rounds=[1],
        capture_clients=1,
    )
    run_local(task, tmp_path)
    (item,) = load_captured(tmp_path / "updates")
    assert item.client == -1 and item.batch == 4 * 3
    ref = per_sample_gradients(_rebuild(item), item.true_inputs, item.true_labels, group=item.batch)
    for name, g in item.update.items():
        torch.testing.assert_close(g, ref[name], rtol=1e-4, atol=1e-6)


def test_load_captured_rejects_bad_input(tmp_path) -> None:
    with pytest.raises(UserError, match="no such folder"):
        load_captured(tmp_path / "missing")
    with pytest.raises(UserError, match="no captured updates"):
        load_captured(tmp_path)
    (tmp_path / "round00001_client000000.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="round00001_client000000.pt"):
        load_captured(tmp_path)
    torch.save({"format": "something else"}, tmp_path / "round00001_client000000.pt")
    with pytest.raises(UserError, match="not a neurofl captured update"):
        load_captured(tmp_path)


def test_captures_carry_their_provenance(tiny, tmp_path) -> None:
    from neurofl.federated.recorder import run_digest
    from neurofl.models.checkpoint import profile_from_dict, profile_to_dict
    from neurofl.runs.identity import dataset_identity

    task = task_for(tiny, "snn", "loihi2", clients=4, rounds=2, seed=7, capture_rounds=[1, 2], capture_clients=2)
    run_local(task, tmp_path)
    items = load_captured(tmp_path / "updates")
    assert len(items) == 4
    for item in items:
        assert item.seed == 7 and item.profile == "loihi2"
        assert item.profile_table == profile_to_dict(task.profile)
        assert profile_from_dict(item.profile_table, "test") == task.profile
        assert item.dataset_identity == dataset_identity(tiny)
        assert item.run == run_digest(task) and len(item.run) == 64


def test_a_folder_mixing_two_runs_is_refused(tiny, tmp_path) -> None:
    for seed, name in ((0, "a"), (1, "b")):
        run_local(task_for(tiny, clients=4, rounds=1, seed=seed, capture_rounds=[1], capture_clients=1),
                  tmp_path / name)  # fmt: skip
    (b_file,) = (tmp_path / "b" / "updates").glob("*.pt")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (a_file,) = (tmp_path / "a" / "updates").glob("*.pt")
    (mixed / a_file.name).write_bytes(a_file.read_bytes())
    (mixed / "round00001_client000003.pt").write_bytes(b_file.read_bytes())
    with pytest.raises(UserError, match="another run"):
        load_captured(mixed)


def test_hostile_capture_folders_are_refused(tiny, tmp_path) -> None:
    import os

    run_local(task_for(tiny, clients=4, rounds=1, capture_rounds=[1], capture_clients=1), tmp_path / "run")
    (real,) = (tmp_path / "run" / "updates").glob("*.pt")
    payload = torch.load(real, weights_only=True)
    # a FIFO among the updates: refused by name, never opened for reading (that would block forever)
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "round00001_client000000.pt")
    with pytest.raises(UserError, match="FIFO"):
        load_captured(fifo_dir)
    # sizes that would make an attack run without end, and seeds out of range
    for key, value, match in (
        ("local_steps", 10**9, "local_steps"),
        ("batch", 10**9, "batch"),
        ("seed", -1, "seed"),
        ("seed", 2**40, "seed"),
        ("seed", "3", "seed"),
        ("run", "x", "run"),
        ("profile_table", {"name": "loihi2"}, "profile_table"),
        ("dataset_identity", {"name": "tiny"}, "dataset_identity"),
    ):
        folder = tmp_path / f"{key}-{value!r}"[:40]
        folder.mkdir()
        torch.save({**payload, key: value}, folder / real.name)
        with pytest.raises(UserError, match=match):
            load_captured(folder)


def test_provenance_is_all_or_nothing(tiny, tmp_path) -> None:
    """Captures written by other code may leave the four provenance fields unrecorded (None), never
    some of them; a folder mixing recorded and unrecorded captures is two runs."""
    run_local(task_for(tiny, clients=4, rounds=1, capture_rounds=[1], capture_clients=2), tmp_path / "run")
    first, second = sorted((tmp_path / "run" / "updates").glob("*.pt"))
    payload = torch.load(first, weights_only=True)
    bare = {**payload, "seed": None, "profile_table": None, "dataset_identity": None, "run": None}
    folder = tmp_path / "bare"
    folder.mkdir()
    torch.save(bare, folder / first.name)
    (item,) = load_captured(folder)
    assert item.run is None and item.seed is None and item.profile == payload["profile"]
    torch.save({**bare, "seed": 3}, folder / first.name)
    with pytest.raises(UserError, match="recorded together or not at all"):
        load_captured(folder)
    torch.save(bare, folder / first.name)
    (folder / second.name).write_bytes(second.read_bytes())
    with pytest.raises(UserError, match="another run"):
        load_captured(folder)


def test_an_empty_dp_sgd_batch_is_not_recorded(tiny, tmp_path) -> None:
    """DP-SGD draws a Poisson sample per step; a client whose first one is empty uploads noise alone
    and has no sample to score against: the next client is recorded in its place, never a file of
    batch 0 (which `load_captured` would refuse)."""
    from neurofl.federated.client import first_batch

    settings = dict(clients=10, rounds=1, batch=1, strategy="fedsgd", defense="dp", dp_level="sample",
                    dp_noise=1.0, capture_rounds=[1], capture_clients=4, seed=0)  # fmt: skip
    task = task_for(tiny, "ann", "float32", **settings)
    sizes = [len(first_batch(c, task.cfg, 1)[1]) for c in task.clients]
    assert 0 in sizes[:4], sizes  # rate 1/n over a client's n samples: about a third draw none
    run_local(task, tmp_path)
    items = load_captured(tmp_path / "updates")
    expected = [k for k, n in enumerate(sizes) if n][:4]
    assert [c.client for c in items] == expected
    assert [c.batch for c in items] == [sizes[k] for k in expected]


def _close(update: dict, ref: dict) -> bool:
    return all(torch.allclose(update[name], ref[name], rtol=1e-4, atol=1e-6) for name in update)


@pytest.mark.parametrize("kind", ["ann", "snn"])
def test_captured_fedavg_delta_is_the_unrolled_local_epoch(tiny, tmp_path, kind: str) -> None:
    """FedAvg without DP-SGD: the K steps walk K disjoint minibatches of one draw, and the capture
    holds all their samples in step order with the minibatch, so the delta is exactly
    ``attacks/fedavg.local_update(minibatch=batch)`` on them, recomputed from the capture's global
    model; K steps on the whole batch (the capture ignoring its minibatch) are not it."""
    from neurofl.attacks.fedavg import local_update

    task = task_for(tiny, kind, "float32", clients=5, rounds=2, strategy="fedavg", local_steps=3, batch=4, lr=0.3,
                    capture_rounds=[1, 2], capture_clients=2)  # fmt: skip
    assert all(len(c.y) >= 12 for c in task.clients)  # every client holds an epoch of 3 batches
    run_local(task, tmp_path)
    items = load_captured(tmp_path / "updates")
    assert [(c.round, c.client) for c in items] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    for item in items:
        assert item.kind == "delta" and item.local_steps == 3 and item.batch == 12 and item.minibatch == 4
        assert len(torch.unique(item.true_inputs.flatten(1), dim=0)) == 12  # 12 distinct samples
        model = _rebuild(item)
        ref = local_update(model, item.true_inputs, item.true_labels, item.batch, item.local_steps, item.lr,
                           minibatch=item.minibatch)  # fmt: skip
        for name, d in item.update.items():
            assert d.shape == ref[name].shape
            torch.testing.assert_close(d, ref[name].detach(), rtol=1e-4, atol=1e-6)
        whole = local_update(model, item.true_inputs, item.true_labels, item.batch, item.local_steps, item.lr)
        assert not _close(item.update, {k: v.detach() for k, v in whole.items()})


@pytest.mark.parametrize("n,trained,minibatch", [(3, 3, None), (4, 4, None), (10, 8, 4), (13, 12, 4), (40, 12, 4)])
def test_a_client_walks_the_minibatches_it_holds(tiny, n: int, trained: int, minibatch: int | None) -> None:
    """batch 4, 3 local steps: a client of n < 4 samples takes every step on all of them; of
    n < 12 the floor(n / 4) disjoint batches it holds, cyclically; else one epoch of 3 batches.
    The first step's samples are ``first_batch``'s; the update is ``local_update`` on the samples
    in step order."""
    from neurofl.attacks.fedavg import local_update
    from neurofl.federated.client import ClientData, client_round, first_batch, trained_batch

    task = task_for(tiny, "ann", "float32", clients=2, rounds=1, strategy="fedavg", local_steps=3, batch=4, lr=0.3)
    model = task.new_model()
    data = ClientData(1, torch.from_numpy(tiny.x[:n]), torch.from_numpy(tiny.y[:n]))
    (r,) = client_round(model, [data], task.cfg, task.profile, 1)
    x, y, m = trained_batch(data, task.cfg, 1)
    assert len(r.labels) == trained and r.minibatch == m == minibatch
    assert torch.equal(r.inputs, x) and torch.equal(r.labels, y)
    assert len(torch.unique(x.flatten(1), dim=0)) == trained
    assert torch.equal(first_batch(data, task.cfg, 1)[0], x[: minibatch or trained])
    assert r.num_examples == 3 * min(4, n)  # the aggregation weight: steps x the batch of a step
    ref = local_update(model, x, y, trained, 3, 0.3, minibatch=minibatch)
    for name, d in r.update.items():
        torch.testing.assert_close(d, ref[name].detach(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("strategy", ["fedsgd", "fedavg"])
@pytest.mark.parametrize("vectorize", [True, False])
def test_one_step_captures_draw_the_samples_they_always_drew(tiny, tmp_path, strategy: str, vectorize: bool) -> None:
    """One local step (FedSGD, or FedAvg with K = 1): the client's batch is the draw made before
    local epochs, ``rng.choice(n, b, replace=False)`` sorted, on either path, and its capture has
    no minibatch."""
    import numpy as np

    from neurofl.federated.rng import numpy_rng

    task = task_for(tiny, "ann", "float32", clients=5, rounds=2, batch=4, strategy=strategy, vectorize=vectorize,
                    capture_rounds=[1, 2], capture_clients=3)  # fmt: skip
    run_local(task, tmp_path)
    items = load_captured(tmp_path / "updates")
    assert len(items) == 6
    for item in items:
        data = task.clients[item.client]
        idx = np.sort(numpy_rng(task.cfg.seed, "batch", item.round, data.client).choice(len(data.y), 4, replace=False))
        assert item.minibatch is None and item.batch == 4
        assert torch.equal(item.true_inputs, data.x[idx]) and torch.equal(item.true_labels, data.y[idx])


def _one_capture(tiny, tmp_path, **settings):
    run_local(task_for(tiny, "ann", "float32", clients=4, rounds=1, capture_rounds=[1], capture_clients=1,
                       **settings), tmp_path / "run")  # fmt: skip
    (real,) = (tmp_path / "run" / "updates").glob("*.pt")
    return real, torch.load(real, weights_only=True)


def test_a_format_2_capture_loads_with_no_minibatch(tiny, tmp_path) -> None:
    real, payload = _one_capture(tiny, tmp_path)
    assert payload["format"] == "neurofl.captured_update/3" and payload["minibatch"] is None
    old = {k: v for k, v in payload.items() if k != "minibatch"}
    folder = tmp_path / "old"
    folder.mkdir()
    torch.save({**old, "format": "neurofl.captured_update/2"}, folder / real.name)
    (item,) = load_captured(folder)
    assert item.minibatch is None and item.batch == payload["batch"]
    torch.save(old, folder / real.name)  # format 3 without the field
    with pytest.raises(UserError, match="without 'minibatch'"):
        load_captured(folder)


def test_a_bad_minibatch_is_refused_naming_file_and_key(tiny, tmp_path) -> None:
    real, payload = _one_capture(tiny, tmp_path, strategy="fedavg", local_steps=3, batch=2)
    assert payload["batch"] == 6 and payload["minibatch"] == 2
    for value in (0, 4, 1, 7, "2", 2.0, True, -1):  # 1: three steps of one sample cannot walk 6 samples
        folder = tmp_path / f"bad-{value!r}"
        folder.mkdir()
        torch.save({**payload, "minibatch": value}, folder / real.name)
        with pytest.raises(UserError, match="'minibatch'") as e:
            load_captured(folder)
        assert str(folder / real.name) in str(e.value) and "\n" not in str(e.value)
    for value in (None, 3, 6):  # every step on all 6; steps on halves (3 x 3 >= 6); minibatch = batch
        folder = tmp_path / f"good-{value!r}"
        folder.mkdir()
        torch.save({**payload, "minibatch": value}, folder / real.name)
        (item,) = load_captured(folder)
        assert item.minibatch == value
