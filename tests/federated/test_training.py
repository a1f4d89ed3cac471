"""Client training, aggregation and the engine against independent references."""

import pytest
import torch
import torch.nn.functional as F

from neurofl.errors import UserError
from neurofl.federated import fl_config
from neurofl.federated.client import ClientData, client_round, weights_of
from neurofl.federated.engine import run_local
from neurofl.federated.server import apply_update, weighted_mean

from .conftest import task_for


def _sgd_reference(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> dict:
    """Plain torch autograd SGD on the whole batch (independent of neurofl.leakage.gradients)."""
    params = dict(model.named_parameters())
    names = [n for n, _ in model.weight_layers()]
    start = {n: params[n].detach().clone() for n in names}
    for _ in range(steps):
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for n in names:
                params[n] -= lr * params[n].grad
    out = {n: params[n].detach().clone() for n in names}
    with torch.no_grad():
        for n in names:
            params[n].copy_(start[n])
    return out


@pytest.mark.parametrize("kind", ["ann", "snn"])
def test_fedavg_of_identical_clients_equals_one_clients_training(tiny, kind: str) -> None:
    # float32 profile: the upload is not quantized, so the aggregate must equal plain local SGD.
    task = task_for(
        tiny, kind, "float32", clients=4, rounds=1, strategy="fedavg", local_steps=3, batch=10, lr=0.3
    )
    model = task.new_model()
    x, y = task.clients[0].x[:10], task.clients[0].y[:10]
    clones = [ClientData(k, x, y) for k in range(4)]  # every client holds the same 10 samples = one batch
    results = client_round(model, clones, task.cfg, task.profile, 1)
    expected = _sgd_reference(model, x, y, steps=3, lr=0.3)
    apply_update(
        model, weighted_mean([r.update for r in results], [r.num_examples for r in results]), task.cfg
    )
    for name, w in weights_of(model).items():
        torch.testing.assert_close(w, expected[name], rtol=1e-4, atol=1e-5)


def test_vectorized_round_equals_client_by_client(tiny) -> None:
    task = task_for(tiny, "snn", "loihi2", clients=6, rounds=1, batch=4)
    seq = fl_config({**task.cfg.__dict__, "capture_rounds": [], "vectorize": False})
    model = task.new_model()
    fast = client_round(model, task.clients, task.cfg, task.profile, 1)
    slow = client_round(model, task.clients, seq, task.profile, 1)
    for a, b in zip(fast, slow, strict=True):
        assert torch.equal(a.labels, b.labels)
        for name in a.update:
            torch.testing.assert_close(a.update[name], b.update[name], rtol=1e-4, atol=1e-6)


def test_upload_is_on_the_profiles_int8_grid(tiny) -> None:
    task = task_for(tiny, "ann", "loihi2", clients=3, rounds=1)
    for r in client_round(task.new_model(), task.clients, task.cfg, task.profile, 1):
        for t in r.update.values():
            scale = t.abs().max() / 127
            q = t / scale
            torch.testing.assert_close(q, q.round(), rtol=0, atol=1e-3)
            assert q.abs().max() <= 127 + 1e-3


def test_training_improves_accuracy(tiny) -> None:
    res = run_local(
        task_for(tiny, "ann", "float32", clients=5, rounds=8, strategy="fedavg", local_steps=5, lr=0.5)
    )
    assert res.rows[-1]["accuracy"] > res.rows[0]["accuracy"] + 0.3


def test_resume_equals_uninterrupted_run(tiny, tmp_path) -> None:
    settings = dict(
        clients=6, rounds=4, fraction=0.5, strategy="fedavg", local_steps=2, defense="dp", dp_noise=0.01
    )
    full = run_local(task_for(tiny, "snn", "loihi1", **settings), tmp_path / "a")
    first = run_local(task_for(tiny, "snn", "loihi1", **settings), tmp_path / "b", stop_after=2)
    assert first.rows[-1]["round"] == 2 and not (tmp_path / "b" / "model.pt").exists()
    resumed = run_local(task_for(tiny, "snn", "loihi1", **settings), tmp_path / "b")
    assert resumed.resumed_from == 2
    for (n, p), (_, q) in zip(
        full.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(p, q), n
    assert [r["accuracy"] for r in full.rows] == [r["accuracy"] for r in resumed.rows]
    with pytest.raises(UserError, match="holds a run with"):
        run_local(task_for(tiny, "snn", "loihi1", **{**settings, "lr": 0.1}), tmp_path / "b")


def test_bad_settings_are_user_errors() -> None:
    with pytest.raises(UserError, match="local_steps"):
        fl_config({"clients": 2, "rounds": 1, "strategy": "fedsgd", "local_steps": 3})
    with pytest.raises(UserError, match="capture_rounds"):
        fl_config({"clients": 2, "rounds": 3, "capture_rounds": [4]})
    with pytest.raises(UserError, match="secagg"):
        fl_config({"clients": 2, "rounds": 3, "defense": "secagg"})
    with pytest.raises(UserError, match="fraction"):
        fl_config({"clients": 2, "rounds": 3, "fraction": 1.5})


def test_more_clients_than_samples_is_a_user_error(tiny) -> None:
    with pytest.raises(UserError, match="more clients"):
        task_for(tiny, clients=10_000, rounds=1)
