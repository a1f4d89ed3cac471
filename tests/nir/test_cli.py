"""`neurofl import` and `neurofl export --format nir` end to end: an snnTorch network goes through
import, NetX export and Lava verify; bad input exits 2 with one line and writes nothing."""

from __future__ import annotations

import json

import nir
import pytest

from neurofl_testing.cli import run_captured as run
from neurofl_testing.nir_nets import write_float_snntorch_nir

snn = pytest.importorskip("snntorch")




@pytest.fixture(scope="module")
def snntorch_file(tmp_path_factory):
    """A 64-16-10 snnTorch network (the digits' input and class count), exported by snnTorch."""
    path = tmp_path_factory.mktemp("nir") / "snntorch.nir"
    write_float_snntorch_nir(path)
    return path


def test_snntorch_model_through_import_export_verify(snntorch_file, capsys, tmp_path):
    pt, net, back = tmp_path / "m.pt", tmp_path / "m.net", tmp_path / "back.nir"
    code, out, err = run(capsys, "import", str(snntorch_file), "--profile", "loihi1", "--dt", "1e-4",
                         "--out", str(pt))  # fmt: skip
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("layer 1 ") and "rounded" in lines[0] and "scaled" in lines[0]
    code, out, err = run(capsys, "export", str(pt), "--out", str(net), "--json")
    assert code == 0, err
    code, out, err = run(capsys, "verify", str(net), "--samples", "4", "--json")
    assert code == 0, err
    parity = json.loads(out)["parity"]
    assert parity["spike_agreement"] == 1.0, parity
    code, out, err = run(capsys, "export", str(pt), "--format", "nir", "--out", str(back), "--json")
    assert code == 0, err
    graph = nir.read(back)
    assert [type(n).__name__ for n in graph.nodes.values()].count("CubaLIF") == 2


def test_import_json_and_dataset_mismatch(snntorch_file, capsys, tmp_path):
    code, out, _ = run(capsys, "import", str(snntorch_file), "--dt", "1e-4", "--out", str(tmp_path / "a.pt"), "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["widths"] == [64, 16, 10] and len(summary["notes"]) == 2
    code, out, err = run(capsys, "import", str(snntorch_file), "--dt", "1e-4", "--dataset", "faces",
                         "--out", str(tmp_path / "b.pt"))  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1 and "inputs" in err
    assert not (tmp_path / "b.pt").exists()


@pytest.mark.parametrize(
    "dt, expected",
    [("1", "shorter than the step"), ("-1", "--dt must be")],
)
def test_wrong_dt_is_refused(snntorch_file, capsys, tmp_path, dt, expected):
    code, out, err = run(capsys, "import", str(snntorch_file), "--dt", dt, "--out", str(tmp_path / "m.pt"))
    assert code == 2 and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "m.pt").exists()


def test_export_nir_refuses_an_ann(capsys, tmp_path):
    from neurofl.models import Architecture, build_model
    from neurofl.models.checkpoint import save_checkpoint
    from neurofl.profiles import load_profile

    arch, profile = Architecture((1, 8, 8), 10, (8,)), load_profile("float32")
    save_checkpoint(tmp_path / "ann.pt", build_model("ann", arch, profile, 0), "ann", arch, profile, "digits", 0.5)
    code, _, err = run(capsys, "export", str(tmp_path / "ann.pt"), "--format", "nir", "--out", str(tmp_path / "a.nir"))
    assert code == 2 and err.count("\n") == 1 and "only SNNs" in err
    assert not (tmp_path / "a.nir").exists()
