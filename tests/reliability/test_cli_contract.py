"""The CLI contract on valid combinations and misuses found by the red-team pass of issue #30: every
command x shipped profile either works or is refused with one line (no internal error), what
``train`` writes its loaders accept, an output never overwrites an input or lands under /proc,
a refusal is one line even when numpy warns, and Ctrl-C after the output is complete exits 130."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import nir
import numpy as np
import pytest

from neurofl.cli import INTERRUPTED, run
from neurofl.profiles import load_profile, shipped_profiles

ROOT = Path(__file__).resolve().parents[2]


def _cli(capsys, *args: str) -> tuple[int, str, list[str]]:
    code = run([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def _nir(path: Path, weight_scale: float = 1.0, inputs: int = 4, outputs: int = 2) -> Path:
    """An inputs-3-outputs CubaLIF chain as nir.write lays it out."""
    rng = np.random.default_rng(0)
    lif = dict(tau_syn=np.full(3, 4e-4), tau_mem=np.full(3, 8e-4), r=np.full(3, 8.0), v_leak=np.zeros(3),
               v_threshold=np.ones(3), w_in=np.full(3, 4.0))  # fmt: skip
    lif2 = {k: np.full(outputs, v[0]) for k, v in lif.items()}
    w1 = rng.normal(size=(3, inputs)) * weight_scale
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([inputs])),
            "fc1": nir.Linear(weight=w1),
            "lif1": nir.CubaLIF(**lif),
            "fc2": nir.Linear(weight=rng.normal(size=(outputs, 3)).astype(np.float32)),
            "lif2": nir.CubaLIF(**lif2),
            "output": nir.Output(output_type=np.array([outputs])),
        },
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")],
    )
    nir.write(path, graph)
    return path


def _one_line(err: list[str], *needles: str) -> None:
    assert len(err) == 1 and err[0].startswith("error: "), err
    for n in needles:
        assert n in err[0], (n, err)


# -- 3. import under every shipped profile ------------------------------------------------------


@pytest.mark.parametrize("profile", sorted(shipped_profiles()))
def test_import_under_every_shipped_profile_works_or_is_refused_in_one_line(tmp_path, capsys, profile):
    src = _nir(tmp_path / "m.nir")
    out = tmp_path / "m.pt"
    code, _, err = _cli(capsys, "import", src, "--dt", "1e-4", "--dataset", "none", "--profile", profile, "--out", out)
    if load_profile(profile).neuron.decay == "multiplier":
        assert code == 0 and out.exists(), err
    else:  # a chip network: truenorth was an AttributeError (exit 1)
        assert code == 2
        _one_line(err, f"--profile {profile}", "chip network", "multiplier")
        assert not out.exists()


# -- 4. what train writes, its loaders accept ---------------------------------------------------


def _idx(path: Path, array: np.ndarray) -> None:
    head = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(head + array.astype(np.uint8).tobytes())


def _tiny_mnist(root: Path, per_class: int) -> Path:
    """An MNIST tree of ``per_class`` training images of each of 10 classes and no test images."""
    folder = root / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), per_class)
    _idx(folder / "train-images-idx3-ubyte", rng.integers(0, 256, (len(labels), 28, 28)))
    _idx(folder / "train-labels-idx1-ubyte", labels)
    _idx(folder / "t10k-images-idx3-ubyte", np.zeros((0, 28, 28)))
    _idx(folder / "t10k-labels-idx1-ubyte", np.zeros(0))
    return root


def test_train_refuses_an_empty_test_split_before_training(tmp_path, capsys):
    data = _tiny_mnist(tmp_path / "data", 2)  # 2 per class: none reaches the test split
    out = tmp_path / "out" / "m.pt"
    code, _, err = _cli(capsys, "train", "--dataset", "mnist", "--data-dir", data, "--epochs", "1", "--out", out)
    assert code == 2
    _one_line(err, "test split is empty")
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_train_refuses_a_chip_of_one_output_neuron_before_training(tmp_path, capsys):
    text = shipped_profiles()["xylo-audio2"].read_text()
    lines = ["output_neurons = 1" if ln.startswith("output_neurons") else ln for ln in text.splitlines()]
    profile = tmp_path / "one-output.toml"
    profile.write_text("\n".join(lines) + "\n")
    out = tmp_path / "m.pt"
    code, _, err = _cli(capsys, "train", "--profile", profile, "--epochs", "1", "--out", out)
    assert code == 2
    _one_line(err, "1 output class")
    assert not out.exists() and not Path(str(out) + ".resume").exists()


def test_save_checkpoint_refuses_what_load_checkpoint_refuses(tmp_path):
    from neurofl.errors import UserError
    from neurofl.models import Architecture, build_model
    from neurofl.models.checkpoint import save_checkpoint

    profile = load_profile("float32")
    arch = Architecture((1, 8, 8), 10, (16,))
    model = build_model("ann", arch, profile, seed=0)
    with pytest.raises(UserError, match="accuracy"):
        save_checkpoint(tmp_path / "m.pt", model, "ann", arch, profile, "digits", float("nan"))
    assert not (tmp_path / "m.pt").exists()


@pytest.fixture(scope="module")
def xylo_checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("xylo") / "x.pt"
    assert run(["train", "--profile", "xylo-audio2", "--epochs", "1", "--out", str(out)]) == 0
    return out


def test_an_8_class_xylo_checkpoint_runs_in_fl(xylo_checkpoint, tmp_path, capsys):
    code, _, err = _cli(capsys, "fl", "--model", xylo_checkpoint, "--clients", "2", "--rounds", "1",
                        "--out", tmp_path / "fl", "--json")  # fmt: skip
    assert code == 0, err


def test_an_8_class_xylo_checkpoint_is_attacked_on_the_classes_it_was_trained_on(xylo_checkpoint, tmp_path, capsys):
    code, out, err = _cli(capsys, "attack", "--model", xylo_checkpoint, "--recipe", "idlg", "--victims", "1",
                          "--iterations", "2", "--out", tmp_path / "at", "--json")  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "at" / "report.json").read_text())
    assert report["results"][0]["samples"] == 1


def test_a_model_imported_without_a_dataset_is_refused_by_export_with_the_reason(tmp_path, capsys):
    pt = tmp_path / "m.pt"
    assert _cli(capsys, "import", _nir(tmp_path / "m.nir"), "--dt", "1e-4", "--dataset", "none", "--out", pt)[0] == 0
    code, _, err = _cli(capsys, "export", pt, "--out", tmp_path / "m.net")
    assert code == 2
    _one_line(err, "imported with --dataset none", "--format nir")
    assert _cli(capsys, "export", pt, "--format", "nir", "--out", tmp_path / "back.nir")[0] == 0


# -- 5. outputs -----------------------------------------------------------------------------------


def test_out_equal_to_the_input_is_refused(tmp_path, capsys):
    src = _nir(tmp_path / "m.nir")
    before = src.read_bytes()
    (tmp_path / "link.nir").symlink_to(src)
    for out in (src, tmp_path / "link.nir", tmp_path / "sub" / ".." / "m.nir"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        code, _, err = _cli(capsys, "import", src, "--dt", "1e-4", "--dataset", "none", "--out", out)
        assert code == 2
        _one_line(err, "is the input")
    assert src.read_bytes() == before
    pt = tmp_path / "m.pt"
    assert _cli(capsys, "import", src, "--dt", "1e-4", "--dataset", "none", "--out", pt)[0] == 0
    code, _, err = _cli(capsys, "export", pt, "--format", "nir", "--out", pt)
    assert code == 2
    _one_line(err, "is the input")


def test_out_under_proc_is_refused_after_resolving(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = _nir(tmp_path / "m.nir")
    code, _, err = _cli(capsys, "import", src, "--dt", "1e-4", "--dataset", "none", "--out", "/proc/self/cwd/x.pt")
    assert code == 2
    _one_line(err, "system folder")
    assert not (tmp_path / "x.pt").exists()


# -- 6. one line -----------------------------------------------------------------------------------


def test_a_1e308_parameter_is_refused_in_one_line_without_numpy_warnings(tmp_path, capsys):
    src = _nir(tmp_path / "big.nir", weight_scale=1e308)
    # pytest would capture a warning the CLI lets out (it never reaches stderr here): record them
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        code, _, err = _cli(capsys, "import", src, "--dt", "1e-4", "--dataset", "none", "--out", tmp_path / "m.pt")
    assert code == 2
    _one_line(err, str(src))
    assert not escaped, [str(w.message) for w in escaped]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the socket is: nothing listens there


def test_an_unreachable_ray_address_is_refused_in_one_line_before_ray_starts(tmp_path, capsys):
    port = _closed_port()
    code, _, err = _cli(capsys, "fl", "--backend", "flower", "--ray-address", f"127.0.0.1:{port}", "--clients", "2",
                        "--rounds", "1", "--out", tmp_path / "fl")  # fmt: skip
    assert code == 2
    _one_line(err, f"127.0.0.1:{port}", "nothing answers")
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()
    assert not (tmp_path / "fl").exists()


def test_the_ray_probe_parses_addresses():
    from neurofl.commands.fl import probe_ray_address
    from neurofl.errors import UserError

    probe_ray_address("auto")  # left to Ray
    port = _closed_port()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}", f"[::1]:{port}"):
        with pytest.raises(UserError, match="nothing answers"):
            probe_ray_address(address)
    for address in ("127.0.0.1:http", "127.0.0.1:70000", ":6379"):
        with pytest.raises(UserError, match="expected auto"):
            probe_ray_address(address)


# -- 7. Ctrl-C after the output is complete -------------------------------------------------------

# The real entry point; SIGINT arrives from an atexit handler, i.e. after the command's output is
# complete, during the interpreter's shutdown (no clock involved).
CTRL_C_AT_EXIT = """
import atexit, os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))
sys.argv = ["neurofl", *sys.argv[1:]]
import runpy
runpy.run_module("neurofl", run_name="__main__")
"""


@pytest.mark.parametrize("args", [["profiles", "list"], ["profiles", "show", "nonexistent-profile"]])
def test_ctrl_c_during_shutdown_exits_130_with_the_resume_line(args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CTRL_C_AT_EXIT, *args], capture_output=True, text=True, env=env,
                          timeout=600)  # fmt: skip
    assert done.returncode == 130, (done.returncode, done.stderr[-2000:])
    err = done.stderr.strip().splitlines()
    assert err[-1] == INTERRUPTED and len(err) <= 2, err  # a refusal's own line may come first
    if args[1] == "list":
        assert "loihi2" in done.stdout  # the output was complete


def test_an_8_class_xylo_checkpoint_is_evaluated_on_the_classes_it_was_trained_on(xylo_checkpoint, tmp_path, capsys):
    code, _, err = _cli(capsys, "evaluate", "--model", xylo_checkpoint, "--attack", "idlg", "--victims", "2",
                        "--iterations", "2", "--train-epochs", "0", "--workers", "1",
                        "--out", tmp_path / "ev")  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert {r["model"] for r in report["results"]} == {"ann", "snn"}


@pytest.mark.parametrize("error", ["MemoryError", "torch.cuda.OutOfMemoryError"])
def test_running_out_of_memory_is_one_line_naming_what_to_lower(error, capsys, monkeypatch):
    import torch

    import neurofl.commands.profiles

    cls = MemoryError if error == "MemoryError" else torch.cuda.OutOfMemoryError

    def exhausted() -> dict[str, Path]:
        raise cls("cannot allocate 12.0 GiB")

    monkeypatch.setattr(neurofl.commands.profiles, "shipped_profiles", exhausted)  # what `profiles list` calls
    assert run(["profiles", "list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: out of memory") and "--max-memory" in err[0], err
