"""The Flower backend (real Flower ClientApp/ServerApp on Ray) against the in-process engine."""

import pytest
import torch

from neurofl.federated.capture import load_captured
from neurofl.federated.engine import run_local
from neurofl.federated.flower import run_flower

from .conftest import task_for


@pytest.mark.timeout(300)
def test_local_and_flower_train_the_same_model(tiny, tmp_path) -> None:
    settings = dict(
        clients=4,
        rounds=2,
        fraction=0.5,
        strategy="fedavg",
        local_steps=2,
        batch=8,
        capture_rounds=[2],
        capture_clients=2,
    )
    local = run_local(task_for(tiny, "ann", "loihi2", **settings), tmp_path / "local")
    flower = run_flower(task_for(tiny, "ann", "loihi2", **settings), tmp_path / "flower", cpus=2)
    assert len(flower.rows) == 3
    for a, b in zip(local.rows, flower.rows, strict=True):
        assert abs(a["accuracy"] - b["accuracy"]) <= 0.01
    for (n, p), (_, q) in zip(
        local.model.state_dict().items(), flower.model.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=n)
    # the server captured the same uploads on both backends
    for x, y in zip(
        load_captured(tmp_path / "local" / "updates"),
        load_captured(tmp_path / "flower" / "updates"),
        strict=True,
    ):
        assert (x.round, x.client) == (y.round, y.client)
        for name in x.update:
            torch.testing.assert_close(x.update[name], y.update[name])
        assert torch.equal(x.true_inputs, y.true_inputs)
