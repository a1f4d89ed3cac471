"""Malformed and hostile .nir files: `neurofl import` exits 2 with one line naming the file and the
problem, before reading anything large, and writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest

from neurofl.cli import main


def _valid(path: Path) -> None:
    """A 4-3-2 CubaLIF network, as nir.write lays it out."""
    rng = np.random.default_rng(0)
    lif = dict(tau_syn=np.full(3, 4e-4), tau_mem=np.full(3, 8e-4), r=np.full(3, 8.0), v_leak=np.zeros(3),
               v_threshold=np.ones(3), w_in=np.full(3, 4.0))  # fmt: skip
    lif2 = {k: v[:2] for k, v in lif.items()}
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([4])),
            "fc1": nir.Affine(weight=rng.normal(size=(3, 4)).astype(np.float32), bias=np.zeros(3, np.float32)),
            "lif1": nir.CubaLIF(**lif),
            "fc2": nir.Linear(weight=rng.normal(size=(2, 3)).astype(np.float32)),
            "lif2": nir.CubaLIF(**lif2),
            "output": nir.Output(output_type=np.array([2])),
        },
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")],
    )
    nir.write(path, graph)


def _replace(key: str, **kwargs) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        del f[key]
        f.create_dataset(key, **kwargs)

    return edit


def _edges(edges: list[tuple[str, str]]) -> Callable[[h5py.File], None]:
    return _replace("node/edges", data=np.array(edges, dtype=object), dtype=h5py.string_dtype())


def _external(f: h5py.File) -> None:
    f["node/nodes/fc1/extra"] = h5py.ExternalLink("/etc/passwd.h5", "/x")


def _nested(f: h5py.File) -> None:
    del f["node/nodes/lif1/type"]
    f["node/nodes/lif1"].create_dataset("type", data="NIRGraph", dtype=h5py.string_dtype())


def _node_type(name: str, kind: str) -> Callable[[h5py.File], None]:
    return _replace(f"node/nodes/{name}/type", data=kind, dtype=h5py.string_dtype())


def _second_output(f: h5py.File) -> None:
    g = f["node/nodes"].create_group("out2")
    g.create_dataset("type", data="Output", dtype=h5py.string_dtype())
    g.create_dataset("shape", data=np.array([2]))


def _delete(key: str) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        del f[key]

    return edit


CASES: dict[str, tuple[Callable[[h5py.File], None], str]] = {
    "huge declared shape": (_replace("node/nodes/fc1/weight", shape=(100_000, 100_000), dtype="f4"), "claim more"),
    "unwritten data": (_replace("node/nodes/fc1/weight", shape=(3, 4), dtype="f4"), "stores fewer"),
    "weight as a string": (_replace("node/nodes/fc1/weight", data="3x4", dtype=h5py.string_dtype()), "numbers"),
    "NaN weight": (_replace("node/nodes/fc1/weight", data=np.full((3, 4), np.nan, np.float32)), "NaN"),
    "compressed": (_replace("node/nodes/fc1/weight", data=np.ones((3, 4), np.float32), compression="gzip"),
                   "compressed"),  # fmt: skip
    "edge to a missing node": (_edges([("input", "fc1"), ("fc1", "ghost")]), "missing node 'ghost'"),
    "cycle": (_edges([("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc1"), ("lif1", "fc2"), ("fc2", "lif2"),
                      ("lif2", "output")]), "cycle"),  # fmt: skip
    "branch": (_edges([("input", "fc1"), ("input", "fc2"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
                       ("lif2", "output")]), "feeds 2 nodes"),  # fmt: skip
    "edges not strings": (_replace("node/edges", data=np.zeros((5, 2))), "node names"),
    "external link": (_external, "ExternalLink"),
    "nested graph": (_nested, "recurrent subgraph"),
    "unknown node type": (_node_type("fc1", "Conv3d"), "not supported"),
    "missing key": (_delete("node/nodes/lif1/tau_mem"), "lacks 'tau_mem'"),
    "two outputs": (_second_output, "exactly one Output"),
    "neuron without its keys": (_node_type("lif2", "Output"), "lacks 'shape'"),
    "no edges": (_delete("node/edges"), "no 'edges'"),
    "bias": (_replace("node/nodes/fc1/bias", data=np.ones(3, np.float32)), "no bias"),
    "leak": (_replace("node/nodes/lif1/v_leak", data=np.full(3, 0.5)), "v_leak"),
    "per-neuron tau": (_replace("node/nodes/lif1/tau_mem", data=np.array([8e-4, 9e-4, 8e-4])), "differs between"),
    "negative threshold": (_replace("node/nodes/lif2/v_threshold", data=np.full(2, -1.0)), "positive threshold"),
    "wrong width": (_replace("node/nodes/fc2/weight", data=np.ones((2, 5), np.float32)), "takes 5 inputs"),
}


def _run(capsys, path: Path, out: Path) -> tuple[int, str]:
    try:
        main(["import", str(path), "--dt", "1e-4", "--dataset", "none", "--profile", "loihi1", "--out", str(out)])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def test_the_valid_file_imports(tmp_path, capsys):
    _valid(tmp_path / "ok.nir")
    code, err = _run(capsys, tmp_path / "ok.nir", tmp_path / "ok.pt")
    assert code == 0, err and (tmp_path / "ok.pt").exists()


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_file_is_refused_with_one_line(tmp_path, capsys, case):
    edit, expected = CASES[case]
    path = tmp_path / "bad.nir"
    _valid(path)
    with h5py.File(path, "r+") as f:
        edit(f)
    code, err = _run(capsys, path, tmp_path / "m.pt")
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(path) in err, err
    assert expected in err, err
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_file_is_refused(tmp_path, capsys, cut):
    good = tmp_path / "good.nir"
    _valid(good)
    data = good.read_bytes()
    bad = tmp_path / "bad.nir"
    bad.write_bytes(data[: int(len(data) * cut)])
    code, err = _run(capsys, bad, tmp_path / "m.pt")
    assert code == 2 and err.count("\n") == 1 and str(bad) in err, err


def test_not_hdf5_folder_and_missing_are_refused(tmp_path, capsys):
    text = tmp_path / "text.nir"
    text.write_text("not a graph\n")
    for path, expected in ((text, "not a readable HDF5"), (tmp_path, "a folder"), (tmp_path / "no.nir", "no such")):
        code, err = _run(capsys, path, tmp_path / "m.pt")
        assert code == 2 and err.count("\n") == 1 and expected in err, err
