"""Captured updates: file round trip, and that they are exactly what an attacker should see."""

import pytest
import torch

from neurofl.errors import UserError
from neurofl.federated.capture import load_captured
from neurofl.federated.engine import run_local
from neurofl.gradients import per_sample_gradients
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
