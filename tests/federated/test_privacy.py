"""DP levels and their accounting: epsilon against Opacus, calibration, DP-SGD, DP-FedAvg, seeds."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from neurofl.cli import main
from neurofl.federated import defenses, privacy
from neurofl.federated.client import first_batch, private_gradient, raw_updates, weights_of
from neurofl.federated.engine import run_local
from neurofl.federated.server import aggregate
from neurofl.federated.task import dp_schedule

from .conftest import task_for


def test_epsilon_matches_opacus_stepped_accountant() -> None:
    acc = RDPAccountant()
    for _ in range(300):
        acc.step(noise_multiplier=1.1, sample_rate=0.02)
    expected = acc.get_epsilon(delta=1e-5)
    assert privacy.epsilon(1.1, 0.02, 300, 1e-5) == pytest.approx(expected, rel=1e-9)
    assert defenses.dp_epsilon(1.1, 0.02, 300, 1e-5) == pytest.approx(expected, rel=1e-9)
    assert privacy.epsilon(1.1, 0.02, 0, 1e-5) == 0.0


@pytest.mark.parametrize(
    ("target", "rate", "steps"),
    [(1.0, 0.05, 150), (4.0, 0.05, 150), (8.0, 0.05, 150), (1.0, 1.0, 10), (8.0, 1.0, 10), (4.0, 0.2, 30)],
)
def test_calibrated_noise_never_spends_more_than_the_target(target: float, rate: float, steps: int) -> None:
    noise = privacy.calibrate(target, 1e-5, rate, steps)
    assert noise == get_noise_multiplier(
        target_epsilon=target, target_delta=1e-5, sample_rate=rate, steps=steps, epsilon_tolerance=0.01
    )
    spent = privacy.epsilon(noise, rate, steps, 1e-5)
    assert target - 0.011 <= spent <= target
    assert privacy.epsilon(noise * 0.99, rate, steps, 1e-5) > spent  # less noise spends more


def test_schedules_of_the_three_levels() -> None:
    assert privacy.schedule("sample", 20, 10, 5, 8, 32) == privacy.Schedule("sample", 0.25, 5)
    assert privacy.schedule("client", 20, 10, 5, 8, 32) == privacy.Schedule("client", 0.5, 1)
    assert privacy.schedule("local", 20, 10, 5, 8, 32) == privacy.Schedule("client", 1.0, 1)
    assert privacy.schedule("sample", 20, 10, 5, 64, 32).sample_rate == 1.0


@pytest.mark.parametrize("level", ["sample", "client", "local"])
def test_a_run_calibrated_for_a_target_spends_at_most_it(tiny, level: str) -> None:
    task = task_for(tiny, "ann", "float32", clients=4, rounds=3, strategy="fedavg", local_steps=2, batch=4,
                    defense="dp", dp_level=level, dp_epsilon=4.0, dp_delta=1e-4)  # fmt: skip
    sch = dp_schedule(task.cfg, [len(c.y) for c in task.clients])
    assert task.cfg.dp_noise == privacy.calibrate(4.0, 1e-4, sch.sample_rate, sch.steps(3))
    rows = run_local(task).rows
    assert [r["epsilon"] for r in rows[1:]] == sorted(r["epsilon"] for r in rows[1:])
    assert 3.98 <= rows[-1]["epsilon"] <= 4.0
    assert rows[-1]["dp_level"] == level and rows[-1]["noise_multiplier"] == task.cfg.dp_noise


@pytest.mark.parametrize("kind", ["ann", "snn"])
def test_dp_sgd_gradient_clips_each_sample_then_adds_the_noise(tiny, kind: str) -> None:
    task = task_for(tiny, kind, "float32", clients=2, rounds=1, defense="dp", dp_level="sample", dp_noise=0.0)
    model = task.new_model()
    x, y = task.clients[0].x[:5], task.clients[0].y[:5]
    per = []  # every sample's gradient with plain autograd, independent of neurofl.leakage.gradients
    params = dict(model.named_parameters())
    for i in range(5):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1], generator=torch.Generator().manual_seed(0)), y[i : i + 1]).backward()
        per.append({n: params[n].grad.detach().clone() for n, _ in model.weight_layers()})
    norms = [float(torch.sqrt(sum((g**2).sum() for g in p.values()))) for p in per]
    clip = sorted(norms)[2]  # some samples are clipped, some not
    cfg = replace(task.cfg, dp_clip=clip)
    gen = torch.Generator().manual_seed(0)
    got = private_gradient(model, x, y, cfg, 8, gen, torch.Generator().manual_seed(1))
    for name in got:
        expected = sum(p[name] * min(1.0, clip / n) for p, n in zip(per, norms, strict=True)) / 8
        torch.testing.assert_close(got[name][0], expected, rtol=1e-4, atol=1e-6)
    noisy_cfg = replace(cfg, dp_noise=2.0)
    pure = private_gradient(model, x[:0], y[:0], noisy_cfg, 8, gen, torch.Generator().manual_seed(1))
    flat = torch.cat([t.flatten() for t in pure.values()])  # an empty Poisson sample: noise only
    assert float(flat.std()) == pytest.approx(2.0 * clip / 8, rel=0.1)


def test_dp_sgd_batches_are_poisson_samples(tiny) -> None:
    task = task_for(tiny, "ann", "float32", clients=2, rounds=1, batch=8, defense="dp", dp_level="sample")
    sizes = [len(first_batch(task.clients[0], task.cfg, r)[1]) for r in range(1, 201)]
    assert len(set(sizes)) > 3 and sum(sizes) / len(sizes) == pytest.approx(8, rel=0.1)


def test_dp_fedavg_server_clips_averages_uniformly_and_adds_seeded_noise(tiny) -> None:
    task = task_for(tiny, "ann", "float32", clients=3, rounds=1, defense="dp", dp_level="client",
                    dp_clip=1.0, dp_noise=0.0)  # fmt: skip
    g = torch.Generator().manual_seed(0)
    ups = [{"a": torch.randn(1, 50, 40, generator=g) * s} for s in (0.001, 1.0, 10.0)]
    mean = aggregate(ups, [1, 100, 1000], task.cfg, 1)["a"]
    expected = sum(defenses.clip(u, 1.0)["a"] for u in ups) / 3
    torch.testing.assert_close(mean, expected)
    noisy = replace(task.cfg, dp_noise=3.0)
    a, b = aggregate(ups, [1, 1, 1], noisy, 1)["a"], aggregate(ups, [1, 1, 1], noisy, 1)["a"]
    assert torch.equal(a, b) and not torch.equal(a, aggregate(ups, [1, 1, 1], noisy, 2)["a"])
    assert float((a - expected).std()) == pytest.approx(3.0 / 3, rel=0.05)


@pytest.mark.parametrize(("kind", "level"), [("snn", "sample"), ("ann", "client")])
def test_dp_runs_repeat_and_resume_bit_for_bit(tiny, tmp_path, kind: str, level: str) -> None:
    settings = dict(clients=4, rounds=3, fraction=0.25, strategy="fedavg", local_steps=2, batch=4,
                    defense="dp", dp_level=level, dp_epsilon=8.0)  # fmt: skip
    full = run_local(task_for(tiny, kind, "loihi2", **settings), tmp_path / "a")
    again = run_local(task_for(tiny, kind, "loihi2", **settings))
    run_local(task_for(tiny, kind, "loihi2", **settings), tmp_path / "b", stop_after=1)
    resumed = run_local(task_for(tiny, kind, "loihi2", **settings), tmp_path / "b")
    assert resumed.resumed_from == 1
    for other in (again, resumed):
        for (n, p), (_, q) in zip(full.model.state_dict().items(), other.model.state_dict().items(), strict=True):
            assert torch.equal(p, q), n
        assert [r["accuracy"] for r in full.rows] == [r["accuracy"] for r in other.rows]
    other_seed = run_local(task_for(tiny, kind, "loihi2", **{**settings, "seed": 1}))
    assert not all(torch.equal(p, q) for p, q in zip(full.model.state_dict().values(),
                                                     other_seed.model.state_dict().values(), strict=True))


def test_sample_level_client_weights_do_not_depend_on_the_draw(tiny) -> None:
    task = task_for(tiny, "ann", "float32", clients=2, rounds=1, batch=4, local_steps=3, strategy="fedavg",
                    defense="dp", dp_level="sample", dp_noise=1.0)  # fmt: skip
    model = task.new_model()
    start = weights_of(model)
    weights = [n for _, n, _, _ in raw_updates(model, task.clients, task.cfg, 1)]
    assert weights == [12, 12]
    assert all(torch.equal(start[k], v) for k, v in weights_of(model).items())


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--defense", "dp", "--target-epsilon", "0"], "dp_epsilon"),
        (["--defense", "dp", "--target-epsilon", "-1"], "dp_epsilon"),
        (["--defense", "dp", "--delta", "1"], "dp_delta"),
        (["--defense", "dp", "--delta", "0"], "dp_delta"),
        (["--defense", "dp", "--dp-clip", "0"], "dp_clip"),
        (["--defense", "dp", "--target-epsilon", "2", "--dp-noise", "1"], "dp_noise"),
        (["--target-epsilon", "2"], "dp_epsilon"),
        (["--dp-level", "sample"], "dp_level"),
        (["--defense", "dp", "--dp-level", "user"], "--dp-level"),
        (["--defense", "dp", "--target-epsilon", "1e-6", "--dp-level", "local"], "dp_epsilon"),
        (["--defense", "secagg", "--fraction", "0.5"], "secagg"),
    ],
)
def test_bad_dp_values_exit_2_with_one_line(capsys, extra: list[str], named: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["fl", "--clients", "4", "--rounds", "2", "--model", "ann", *extra])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and named in err, err


def test_fl_reports_the_calibrated_noise_and_the_epsilon_spent(capsys) -> None:
    import json

    from neurofl.cli import run

    args = ["fl", "--clients", "4", "--rounds", "2", "--model", "ann", "--strategy", "fedavg", "--local-steps", "2",
            "--defense", "dp", "--dp-level", "sample", "--target-epsilon", "4", "--delta", "1e-4", "--json"]
    assert run(args) == 0
    out = json.loads(capsys.readouterr().out)
    dp, last = out["dp"], out["history"][-1]
    assert dp["level"] == "sample" and dp["unit"] == "sample" and dp["target_epsilon"] == 4.0
    assert dp["noise_multiplier"] == last["noise_multiplier"] != 1.0
    assert 3.98 <= out["epsilon"] == dp["epsilon"] <= 4.0 and dp["delta"] == 1e-4
