"""``--device auto|cpu|cuda``: resolution, refusals from every command, CPU results unchanged, and
run folders that refuse a resume on another device.

On a machine without CUDA (this project's test machines) the CUDA paths themselves cannot run;
``scripts/gpu_check.sh`` exercises them on a GPU.
"""

from __future__ import annotations

import dataclasses
import doctest
import json
import os

import pytest
import torch

import neurofl.runs.device as device_mod
from neurofl.cli import run as run_cli
from neurofl.errors import UserError
from neurofl.runs.device import describe, device_kind, draw, identity_entry, resolve_device
from neurofl_testing.reports import without_timing

NO_CUDA = not torch.cuda.is_available()
needs_no_cuda = pytest.mark.skipif(not NO_CUDA, reason="asserts the refusal on a machine without CUDA")

# the tiny evaluate of tests/foundation/test_evaluate.py
EVALUATE = ["evaluate", "--profile", "loihi2", "--victims", "4", "--clients", "2", "--attack",
            "inverting_gradients", "--iterations", "3", "--train-epochs", "0"]  # fmt: skip


def test_doctests():
    assert doctest.testmod(device_mod, optionflags=doctest.ELLIPSIS).failed == 0


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("cpu", "cpu"),
        (" CPU ", "cpu"),
        ("auto", "cuda" if not NO_CUDA else "cpu"),
        (None, "cuda" if not NO_CUDA else "cpu"),
        (torch.device("cpu"), "cpu"),
    ],
)
def test_resolution(spec, expected):
    assert resolve_device(spec).type == expected


@needs_no_cuda
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA:1"])
def test_cuda_without_cuda_is_one_line(spec):
    with pytest.raises(UserError) as e:
        resolve_device(spec)
    assert str(e.value) == (
        f"--device {spec}: no CUDA device is available (torch.cuda.is_available() is False); use --device cpu or auto"
    )


@pytest.mark.parametrize("spec", ["bogus", "gpu", "cuda:", "cuda:x", "cuda:0:1", "mps", ""])
def test_unknown_names_are_refused(spec):
    if spec == "":  # empty means the default (auto), as an unset option does
        assert resolve_device(spec) == resolve_device("auto")
        return
    with pytest.raises(UserError, match=r"expected auto, cpu, cuda or cuda:N"):
        resolve_device(spec)


def test_identity_entry_leaves_cpu_runs_as_they_were():
    assert identity_entry("cpu") == {} and identity_entry(torch.device("cpu")) == {}
    # the kind only: which of a machine's GPUs ran it does not change the arithmetic
    assert identity_entry("cuda") == identity_entry("cuda:1") == {"device": "cuda"}
    assert device_kind("cuda:3") == "cuda" and describe(torch.device("cpu")) == {"device": "cpu"}


def test_draw_is_the_cpu_generators_numbers():
    a = draw(torch.randn, (3, 4), generator=torch.Generator().manual_seed(7), device="cpu")
    b = torch.randn((3, 4), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_rate_code_draws_where_the_generator_lives():
    """The encoder draws on its generator's device, so one seed gives one spike train whatever the
    data's device; on the CPU it is the draw it always was."""
    from neurofl.data.encoding import rate

    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    got = rate(x, 5, torch.Generator().manual_seed(3))
    p = x.reshape(2, -1, 1).expand(-1, -1, 5).clamp(0, 1)
    u = torch.rand(p.shape, generator=torch.Generator().manual_seed(3))
    assert torch.equal(got, (u < p).to(p.dtype))


@needs_no_cuda
@pytest.mark.parametrize(
    "argv",
    [
        [*EVALUATE, "--out", "{out}"],
        ["attack", "--recipe", "dlg", "--victims", "1", "--iterations", "1", "--out", "{out}"],
        ["train", "--epochs", "1", "--out", "{out}/m.pt"],
        ["fl", "--clients", "2", "--rounds", "1", "--out", "{out}"],
    ],
    ids=["evaluate", "attack", "train", "fl"],
)
@pytest.mark.parametrize("spec, message", [("cuda", "no CUDA device is available"), ("bogus", "expected auto, cpu")])
def test_every_command_refuses_with_one_line(argv, spec, message, tmp_path, capsys):
    out = tmp_path / "run"
    args = [a.replace("{out}", str(out)) for a in argv] + ["--device", spec]
    assert run_cli(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: --device {spec}: ") and message in err
    assert not out.exists()  # refused before anything was written


@pytest.mark.timeout(1800)
def test_device_cpu_equals_default_and_a_run_refuses_another_device(tmp_path, capsys):
    """``--device cpu`` is the default's run (same numbers, same run identity as before the
    option existed: no ``device`` key); a folder recorded on another device refuses to resume."""
    a, b = tmp_path / "default", tmp_path / "cpu"
    assert run_cli([*EVALUATE, "--out", str(a), "--json"]) == 0
    assert run_cli([*EVALUATE, "--device", "cpu", "--out", str(b), "--json"]) == 0
    capsys.readouterr()
    ra, rb = (json.loads((d / "report.json").read_text()) for d in (a, b))
    assert rb["device"] == "cpu" and "gpu" not in rb
    if NO_CUDA:
        assert without_timing(ra) == without_timing(rb)
    config = json.loads((b / "config.json").read_text())
    assert "device" not in config  # CPU runs keep the identity they had before --device

    config["device"] = "cuda"  # as a CUDA run records itself
    (b / "config.json").write_text(json.dumps(config))
    (b / "report.json").unlink()
    assert run_cli([*EVALUATE, "--device", "cpu", "--out", str(b)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {b} holds a run computed on cuda, not cpu (their arithmetic differs); "
        "rerun with --device cuda to resume it, or use another --out"
    )
    assert not (b / "report.json").exists()


def test_fl_and_train_identities_record_a_gpu_only():
    """The federated run's identity and the training resume file's: unchanged for the CPU, a
    ``device`` entry for CUDA (so a resume on the other refuses)."""
    from neurofl.data import load_dataset
    from neurofl.federated import fl_config
    from neurofl.federated.recorder import identity, run_fingerprint
    from neurofl.federated.task import make_task
    from neurofl.models import Architecture
    from neurofl.profiles import load_profile
    from neurofl.train import TrainConfig, _identity

    ds = load_dataset("digits")
    task = make_task(ds, "ann", load_profile("float32"), fl_config({"clients": 2, "rounds": 1}, "test"))
    assert task.device == "cpu" and "device" not in identity(task)
    gpu = dataclasses.replace(task, device="cuda:0")
    assert identity(gpu) == {**identity(task), "device": "cuda"}
    assert run_fingerprint(gpu) != run_fingerprint(task)

    args = ("snn", Architecture(ds.input_shape, ds.classes), load_profile("loihi2"), ds, ds, 0, TrainConfig())
    assert _identity(*args) == _identity(*args, device="cpu")
    assert json.loads(_identity(*args, device="cuda")) == {**json.loads(_identity(*args)), "device": "cuda"}


@needs_no_cuda
def test_gpu_check_fails_loudly_without_cuda(tmp_path):
    """``scripts/gpu_check.sh`` measures nothing and exits non-zero, saying why, where there is no CUDA."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OUT": str(tmp_path / "out")}
    res = subprocess.run(["bash", str(root / "scripts" / "gpu_check.sh")], capture_output=True, text=True, env=env)
    assert res.returncode == 3
    assert "CUDA is not available to torch" in res.stderr
    assert not (tmp_path / "out" / "gpu_check.json").exists()
