"""The red-team cases added with issue 30: NIR import, numeric edge values in every profile,
recipe and fl key, checkpoints our own writer makes (Xylo's 8 classes, a shipped name holding other
numbers, an import without a dataset), tiny pickles that claim huge arrays, path tricks and option
combinations. :func:`add` appends them to a :class:`~neurofl_testing.redteam_cases.Builder`.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

# Numeric edge values tried in numeric TOML keys (a value TOML cannot parse, 1e400, is its own case).
EDGE_VALUES = ("nan", "inf", "-inf", "-1", "0", "1e30", "9" * 400, "1e-320", "2.5", "65536", "-0.0", "1e308")
TINY = ["--victims", "1", "--iterations", "2"]
EVAL = [*TINY, "--attack", "idlg", "--train-epochs", "0", "--workers", "1"]  # one cheap attack, no training


def _numeric_lines(text: str) -> list[tuple[int, str, str]]:
    """(line index, section.key, value) of every line ``key = <number>`` of a TOML text."""
    out, section = [], ""
    for i, line in enumerate(text.splitlines()):
        m = re.match(r"^\[(\w+)\]\s*$", line)
        if m:
            section = m.group(1) + "."
            continue
        m = re.match(r"^(\w+) = (-?[0-9][0-9_.eE+-]*)\s*$", line)
        if m:
            out.append((i, section + m.group(1), m.group(2)))
    return out


def _with_line(text: str, index: int, key: str, value: str) -> str:
    lines = text.splitlines()
    lines[index] = f"{key.split('.')[-1]} = {value}"
    return "\n".join(lines) + "\n"


def _rotating(i: int, n: int) -> list[str]:
    return [EDGE_VALUES[(i * 5 + k * 4) % len(EDGE_VALUES)] for k in range(n)]


def _shared_models(shared: Path) -> dict[str, Path]:
    """Checkpoints written by our own writers: a Xylo Audio 2 model (8 of digits' 10 classes), an SNN
    whose profile is named loihi1 but holds loihi2's numbers (the header edited), a model imported
    from NIR with ``--dataset none``, a conv SNN; and snnTorch's NIR graph."""
    from neurofl.cli import run
    from neurofl_testing.nir_nets import write_float_snntorch_nir

    out = {"nir": shared / "snntorch.nir", "xylo": shared / "xylo8.pt", "none": shared / "none.pt",
           "conv": shared / "conv.pt", "named": shared / "named-loihi1.pt"}  # fmt: skip
    write_float_snntorch_nir(out["nir"])
    for argv in (
        ["train", "--profile", "xylo-audio2", "--epochs", "1", "--out", str(out["xylo"])],
        ["train", "--profile", "loihi2", "--arch", "conv", "--epochs", "1", "--out", str(out["conv"])],
        ["import", str(out["nir"]), "--profile", "loihi2", "--dt", "1e-4", "--dataset", "none", "--out",
         str(out["none"])],
        ["fl", "--profile", "speck", "--clients", "2", "--rounds", "1", "--batch", "4", "--capture-rounds", "1",
         "--capture-clients", "1", "--out", str(shared / "fl-speck")],
    ):  # fmt: skip
        assert run(argv) == 0, argv
    payload = torch.load(shared / "real.pt", weights_only=True)
    header = json.loads(payload["header"])
    header["profile"]["name"] = "loihi1"
    torch.save({**payload, "header": json.dumps(header)}, out["named"])
    return out


# The cases of this module in the fast subset the test suite runs (one or two per class of the issue).
CI_NAMES = {
    "one weight 1e308", "graph under chip profile truenorth", "--out is the input", "--dt nan",
    "8-class xylo-audio2 checkpoint: attack --model", "header accuracy NaN: attack --model",
    "profile named loihi1 with loihi2's numbers: attack --model", "stride-0 view over one byte",
    "numpy.ndarray((5e6, 3072))", "attack --local-lr nan", "train --out /proc/self/cwd/m.pt",
    "evaluate --profile ',,'", "loihi2: weights.scale = 1e30", "idlg: lr = nan",
    "updates fl captured under speck: attack --updates",
    "evaluate --minibatch 3 of a batch of 4", "train --max-memory 1K",
}  # fmt: skip


def add(b: Any) -> None:
    """Append every case of this module to the builder ``b`` (those in :data:`CI_NAMES` marked ``ci``)."""
    first = len(b.cases)
    models = _shared_models(b.shared)
    _nir_cases(b, models["nir"])
    _profile_key_cases(b)
    _recipe_key_cases(b)
    _fl_key_cases(b)
    _model_cases(b, models)
    _cifar_claims(b)
    _option_cases(b, models)
    _threat_and_budget_cases(b, models)
    for case in b.cases[first:]:
        case.ci = case.name in CI_NAMES


# -- NIR import -------------------------------------------------------------------------------------


def _nir_cases(b: Any, graph: Path) -> None:
    def imp(*extra: str) -> Callable[[Path], list[str]]:
        return lambda d: ["import", str(d / "g.nir"), "--dt", "1e-4", "--dataset", "digits", *extra,
                          "--out", str(d / "out" / "m.pt")]  # fmt: skip

    def case(name: str, edit: Callable[[h5py.File], None] | None = None, expect: str = "refuse",
             raw: Callable[[Path], None] | None = None, argv: Callable[[Path], list[str]] | None = None,
             needle: str | None = "g.nir") -> None:  # fmt: skip
        d = b.add("nir", name, argv or imp(), expect, needle=needle if expect == "refuse" else None)
        if raw is not None:
            raw(d / "g.nir")
            return
        shutil.copyfile(graph, d / "g.nir")
        if edit is not None:
            with h5py.File(d / "g.nir", "r+") as f:
                edit(f)

    def replace(key: str, data: Any, **kw: Any) -> Callable[[h5py.File], None]:
        def edit(f: h5py.File) -> None:
            del f[key]
            f.create_dataset(key, data=data, **kw)

        return edit

    w = h5py.File(graph, "r")["node/nodes/0/weight"][()]
    for profile in ("loihi2", "loihi1", "float32"):
        case(f"valid graph under {profile}", expect="ok", argv=imp("--profile", profile))
    for profile in ("xylo-audio2", "xylo-imu", "speck", "akd1000", "spinnaker2", "truenorth"):
        case(f"graph under chip profile {profile}", argv=imp("--profile", profile), needle="--profile")
    for label, value in (("1e308", 1e308), ("NaN", np.nan), ("inf", np.inf), ("-1e30", -1e30)):
        case(f"one weight {label}", replace("node/nodes/0/weight", np.where(np.arange(w.size).reshape(w.shape) == 5,
                                                                             value, w).astype(np.float64)))  # fmt: skip
        case(f"all weights {label}", replace("node/nodes/2/weight", np.full((10, 16), value, np.float64)))
    for key, value in (("tau_mem", 0.0), ("tau_mem", -1.0), ("tau_mem", np.nan), ("tau_syn", 1e308),
                       ("tau_syn", 0.0), ("v_threshold", 0.0), ("v_threshold", -1.0), ("v_threshold", 1e308),
                       ("r", np.inf), ("w_in", 0.0), ("v_leak", np.nan), ("tau_mem", 1e-320)):  # fmt: skip
        case(f"neuron {key} = {value}", replace(f"node/nodes/1/{key}", np.asarray(value)), "either", needle=None)
    case("weight shape 10^6 x 10^6, never written", lambda f: (f.__delitem__("node/nodes/0/weight"),
         f.create_dataset("node/nodes/0/weight", shape=(10**6, 10**6), dtype="f4", chunks=(1, 1024))))  # fmt: skip
    case("weight 1-D", replace("node/nodes/0/weight", w.reshape(-1)))
    case("weight 3-D", replace("node/nodes/0/weight", w[None]))
    case("weight int64", replace("node/nodes/0/weight", w.astype(np.int64)), "either", needle=None)
    case("weight complex", replace("node/nodes/0/weight", w.astype(np.complex64)))
    case("weight strings", replace("node/nodes/0/weight", np.array([b"x"] * 4)))
    case("input shape [10^9]", replace("node/nodes/input/shape", np.array([10**9])))
    case("input shape [-1]", replace("node/nodes/input/shape", np.array([-1])))
    case("unknown node type", replace("node/nodes/0/type", "Frobnicate"))
    case("node type not a string", replace("node/nodes/0/type", np.arange(3)))
    case("edges to a missing node", replace("node/edges", np.array([[b"input", b"nowhere"]], dtype=object),
                                            dtype=h5py.string_dtype()))  # fmt: skip
    case("edges form a cycle", lambda f: _append_edge(f, "3", "0"))
    case("edges empty", replace("node/edges", np.zeros((0, 2), dtype=object), dtype=h5py.string_dtype()))
    case("no edges", lambda f: f["node"].__delitem__("edges"))
    case("no nodes", lambda f: f["node"].__delitem__("nodes"))
    case("a node deleted", lambda f: f["node/nodes"].__delitem__("1"))
    case("external link", lambda f: (f["node/nodes/0"].__delitem__("weight"),
         f["node/nodes/0"].__setitem__("weight", h5py.ExternalLink("/etc/hostname", "/x"))))  # fmt: skip
    case("version 99", replace("version", "99.0"), "either", needle=None)
    case("groups nested 200 deep", lambda f: _nest(f["node/nodes/0"], 200), "either", needle=None)
    data = graph.read_bytes()
    case("empty file", raw=lambda p: p.write_bytes(b""))
    case("text file", raw=lambda p: p.write_text("not a NIR graph\n"))
    case("truncated to half", raw=lambda p: p.write_bytes(data[: len(data) // 2]))
    case("truncated to 1 KB", raw=lambda p: p.write_bytes(data[:1024]))
    for seed in range(4):
        def garbled(p: Path, seed: int = seed) -> None:
            buf = bytearray(data)
            rng = np.random.default_rng(seed)
            for i in rng.integers(0, len(buf), 64):
                buf[i] ^= 0xFF
            p.write_bytes(bytes(buf))

        case(f"64 bytes garbled (seed {seed})", raw=garbled, expect="either", needle=None)
    case("a FIFO", raw=lambda p: os.mkfifo(p))
    case("a folder", raw=lambda p: p.mkdir())
    case("/dev/zero", raw=lambda p: os.symlink("/dev/zero", p))
    case("a dangling link", raw=lambda p: os.symlink(p.parent / "nowhere", p))
    for dt in ("nan", "0", "-1", "1e400", "inf"):
        case(f"--dt {dt}", argv=lambda d, dt=dt: ["import", str(d / "g.nir"), "--dt", dt, "--out", str(d / "out" /
             "m.pt")], needle="--dt")  # fmt: skip
    case("--out is the input", argv=lambda d: ["import", str(d / "g.nir"), "--dt", "1e-4", "--out", str(d / "g.nir")],
         needle="--out")  # fmt: skip
    case("--out is the input through a link", argv=lambda d: ["import", str(d / "g.nir"), "--dt", "1e-4", "--out",
         str(d / "link.nir")], raw=lambda p: (shutil.copyfile(graph, p), os.symlink(p, p.parent / "link.nir")),
         needle="--out")  # fmt: skip
    case("--out /proc/self/cwd/m.pt", argv=lambda d: ["import", str(d / "g.nir"), "--dt", "1e-4", "--out",
         "/proc/self/cwd/m.pt"], needle="/proc")  # fmt: skip
    case("--dataset faces (other input width)", argv=imp("--dataset", "faces"), needle=None)


def _append_edge(f: h5py.File, a: str, c: str) -> None:
    edges = [[x.decode() if isinstance(x, bytes) else x for x in row] for row in f["node/edges"][()]]
    del f["node/edges"]
    f["node"].create_dataset("edges", data=np.array([*edges, [a, c]], dtype=object), dtype=h5py.string_dtype())


def _nest(group: h5py.Group, depth: int) -> None:
    for _ in range(depth):
        group = group.create_group("g")


# -- numeric edge values in every key of a profile, a recipe, an fl config ---------------------------


def _profile_key_cases(b: Any) -> None:
    from neurofl.profiles import shipped_profiles

    for name in ("loihi2", "xylo-audio2", "truenorth", "speck", "akd1000"):
        text = shipped_profiles()[name].read_text()
        for i, (index, key, _old) in enumerate(_numeric_lines(text)):
            for value in _rotating(i, 2 if name == "loihi2" else 1):
                d = b.add("profile-keys", f"{name}: {key} = {value[:12]}", lambda d: ["train", "--profile",
                          str(d / "p.toml"), "--epochs", "1", "--out", str(d / "out" / "m.pt")], "either")  # fmt: skip
                (d / "p.toml").write_text(_with_line(text, index, key, value))
        d = b.add("profile-keys", f"{name}: 1e400", lambda d: ["profiles", "show", str(d / "p.toml")], "refuse",
                  needle="p.toml", out=None)  # fmt: skip
        index, key, _old = _numeric_lines(text)[0]
        (d / "p.toml").write_text(_with_line(text, index, key, "1e400"))


def _recipe_key_cases(b: Any) -> None:
    from neurofl.shipped import shipped_tomls

    for name in ("idlg", "inverting_gradients", "disaggregation", "learned_inversion"):
        path = shipped_tomls("attacks").get(name)
        if path is None:
            continue
        text = path.read_text()
        for i, (index, key, _old) in enumerate(_numeric_lines(text)):
            for value in _rotating(i + 3, 2):
                d = b.add("recipe-keys", f"{name}: {key} = {value[:12]}", lambda d: ["attack", "--recipe",
                          str(d / "r.toml"), *TINY, "--out", str(d / "out")], "either")  # fmt: skip
                (d / "r.toml").write_text(_with_line(text, index, key, value))


def _fl_key_cases(b: Any) -> None:
    for key, value in (("dp_clip", "nan"), ("dp_clip", "0"), ("dp_noise", "inf"), ("mu", "nan"), ("mu", "-1"),
                       ("prune_keep", "0"), ("prune_keep", "1.5"), ("secagg_clip", "1e308"), ("secagg_clip", "nan"),
                       ("dp_epsilon", "0"), ("dp_epsilon", "nan"), ("dp_delta", "1"), ("fraction", "1e-320"),
                       ("alpha", "1e308"), ("lr", "1e-320"), ("rounds", "9" * 30)):  # fmt: skip
        d = b.add("toml", f"fl config: {key} = {value[:20]}", lambda d: ["fl", "--config", str(d / "c.toml"), "--out",
                  str(d / "out")], "either")  # fmt: skip
        (d / "c.toml").write_text(f"clients = 3\nrounds = 1\n{key} = {value}\n")


# -- checkpoints our own writers make ------------------------------------------------------------------


def _model_cases(b: Any, m: dict[str, Path]) -> None:
    def add(name: str, argv: Callable[[Path], list[str]], expect: str, needle: str | None = None) -> None:
        b.add("models", name, argv, expect, needle=needle)

    xylo, named, none, conv = str(m["xylo"]), str(m["named"]), str(m["none"]), str(m["conv"])
    add("8-class xylo-audio2 checkpoint: evaluate --model", lambda d: ["evaluate", "--model", xylo, *TINY, "--attack",
        "idlg", "--train-epochs", "0", "--workers", "1", "--out", str(d / "out")], "ok")  # fmt: skip
    add("8-class xylo-audio2 checkpoint: attack --model", lambda d: ["attack", "--model", xylo, *TINY, "--recipe",
        "idlg", "--out", str(d / "out")], "ok")  # fmt: skip
    add("8-class xylo-audio2 checkpoint: fl --model", lambda d: ["fl", "--model", xylo, "--clients", "2", "--rounds",
        "1", "--out", str(d / "out")], "ok")  # fmt: skip
    add("8-class xylo-audio2 checkpoint: verify (xylosim)", lambda d: ["verify", xylo, "--samples", "2"], "ok")
    add("8-class xylo-audio2 checkpoint: export (refused: xylosim only)", lambda d: ["export", xylo, "--out",
        str(d / "out" / "m.net")], "refuse", "xylo")  # fmt: skip
    add("profile named loihi1 with loihi2's numbers: attack --model", lambda d: ["attack", "--model", named, *TINY,
        "--recipe", "idlg", "--out", str(d / "out")], "ok")  # fmt: skip
    add("profile named loihi1 with loihi2's numbers: evaluate --profile loihi1", lambda d: ["evaluate", "--model",
        named, "--profile", "loihi1", *TINY, "--out", str(d / "out")], "refuse", "--profile")  # fmt: skip
    add("profile named loihi1 with loihi2's numbers: export --profile loihi1", lambda d: ["export", named, "--profile",
        "loihi1", "--out", str(d / "out" / "m.net")], "refuse", "loihi1")  # fmt: skip
    add("profile named loihi1 with loihi2's numbers: export", lambda d: ["export", named, "--out",
        str(d / "out" / "m.net")], "ok")  # fmt: skip
    add("imported with --dataset none: export (needs a dataset)", lambda d: ["export", none, "--out",
        str(d / "out" / "m.net")], "refuse", "--dataset")  # fmt: skip
    add("imported with --dataset none: export --format nir", lambda d: ["export", none, "--format", "nir", "--out",
        str(d / "out" / "m.nir")], "ok")  # fmt: skip
    add("imported with --dataset none: attack --model without --dataset", lambda d: ["attack", "--model", none, *TINY,
        "--out", str(d / "out")], "refuse", "--dataset")  # fmt: skip
    add("imported with --dataset none: attack --model --dataset digits", lambda d: ["attack", "--model", none, *TINY,
        "--dataset", "digits", "--recipe", "idlg", "--out", str(d / "out")], "ok")  # fmt: skip
    add("imported with --dataset none: fl --model --dataset faces", lambda d: ["fl", "--model", none, "--dataset",
        "faces", "--clients", "2", "--rounds", "1", "--out", str(d / "out")], "refuse", "none.pt")  # fmt: skip
    add("imported with --dataset none: export --dataset digits", lambda d: ["export", none, "--dataset", "digits",
        "--out", str(d / "out" / "m.net")], "ok")  # fmt: skip
    add("updates fl captured under speck: attack --updates", lambda d: ["attack", "--updates",
        str(b.shared / "fl-speck" / "updates"), "--iterations", "2", "--recipe", "idlg", "--out", str(d / "out")],
        "ok")  # fmt: skip
    add("evaluate --threat-model malicious --profile all", lambda d: ["evaluate", "--threat-model", "malicious",
        "--profile", "all", "--victims", "1", "--out", str(d / "out")], "ok")  # fmt: skip
    add("conv checkpoint: fl --model", lambda d: ["fl", "--model", conv, "--clients", "2", "--rounds", "1", "--out",
        str(d / "out")], "refuse", "conv.pt")  # fmt: skip
    add("conv checkpoint: export --format nir", lambda d: ["export", conv, "--format", "nir", "--out",
        str(d / "out" / "m.nir")], "refuse", "conv.pt")  # fmt: skip
    add("conv checkpoint: evaluate --arch mlp", lambda d: ["evaluate", "--model", conv, "--arch", "mlp", *EVAL,
        "--out", str(d / "out")], "refuse", "--arch")  # fmt: skip
    add("checkpoint as --recipe", lambda d: ["attack", "--recipe", str(b.shared / "real.pt"), *TINY], "refuse",
        None)  # fmt: skip
    add("NIR graph as --model", lambda d: ["attack", "--model", str(m["nir"]), *TINY], "refuse", "snntorch.nir")
    net = str(Path(__file__).resolve().parents[3] / "netx_models" / "digits_loihi2.net")
    add("NetX file as --model", lambda d: ["evaluate", "--model", net, *EVAL, "--out", str(d / "out")], "refuse",
        "digits_loihi2.net")  # fmt: skip

    def header_edit(mut: Callable[[dict], None]) -> Callable[[Path], None]:
        def make(d: Path) -> None:
            payload = torch.load(b.shared / "real.pt", weights_only=True)
            h = json.loads(payload["header"])
            mut(h)
            torch.save({**payload, "header": json.dumps(h)}, d / "c.pt")

        return make

    for label, mut in (
        ("accuracy NaN", lambda h: h.__setitem__("accuracy", float("nan"))),
        ("classes 1", lambda h: h["architecture"].__setitem__("classes", 1)),
        ("dataset ''", lambda h: h.__setitem__("dataset", "")),
        ("profile time_steps 1024 (the limit)", lambda h: h["profile"]["simulation"].__setitem__("time_steps", 1024)),
        ("profile named float32 holding loihi2's numbers", lambda h: h["profile"].__setitem__("name", "float32")),
    ):
        d = b.add("models", f"header {label}: attack --model", lambda d: ["attack", "--model", str(d / "c.pt"), *TINY,
                  "--recipe", "idlg", "--out", str(d / "out")], "either")  # fmt: skip
        header_edit(mut)(d)

    def neuron(**keys: str) -> Callable[[dict], None]:
        return lambda h: h["architecture"]["neuron"].update(keys)

    # the ablations' neuron keys in a model file: read, validated, and refused by the exports Lava cannot run
    for label, mut, argv, expect, needle in (
        ("neuron.reset 'halfway': attack --model", neuron(reset="halfway"), "attack", "refuse", "neuron.reset"),
        ("neuron.payload 'graded' with a gaussian surrogate: attack --model",
         neuron(payload="graded", surrogate="gaussian"), "attack", "refuse", "graded spikes"),
        ("neuron.surrogate 'triangle': attack --model", neuron(surrogate="triangle"), "attack", "ok", None),
        ("neuron.reset 'subtract': export", neuron(reset="subtract"), "export", "refuse", "neuron.reset"),
        ("neuron.payload 'graded': export --format nir", neuron(payload="graded"), "nir", "refuse", "neuron.payload"),
    ):  # fmt: skip
        def cmd(d: Path, kind: str = argv) -> list[str]:
            if kind == "attack":
                return ["attack", "--model", str(d / "c.pt"), *TINY, "--recipe", "idlg", "--out", str(d / "out")]
            fmt = ["--format", "nir", "--out", str(d / "out" / "m.nir")] if kind == "nir" else \
                ["--out", str(d / "out" / "m.net")]  # fmt: skip
            return ["export", str(d / "c.pt"), *fmt]

        d = b.add("models", f"header {label}", cmd, expect, needle=needle)
        header_edit(mut)(d)


# -- tiny pickles that claim huge arrays ----------------------------------------------------------------


class _Call:
    def __init__(self, fn: Any, args: tuple):
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple:
        return (self.fn, self.args)


def _cifar_claims(b: Any) -> None:
    from neurofl_testing.redteam_cases import write_cifar

    rec = np.core.multiarray._reconstruct
    three = np.array([3], "<i8").tobytes()
    bombs = {
        "numpy.ndarray((5e6, 3072))": {b"data": _Call(np.ndarray, ((5_000_000, 3072), "u1")), b"fine_labels": [3]},
        "numpy.ndarray of 50,000 uninitialised images": {b"data": _Call(np.ndarray, ((50_000, 3072), "u1")),
                                                         b"fine_labels": _Call(np.ndarray, ((50_000,), "<i8", three, 0,
                                                                                            (0,)))},  # fmt: skip
        "stride-0 view over one byte": {b"data": _Call(np.ndarray, ((50_000, 3072), "u1", b"\x07", 0, (0, 0))),
                                        b"fine_labels": list(range(10)) * 5000},  # fmt: skip
        "_reconstruct then setstate with 10 bytes": {b"data": _Call(rec, (np.ndarray, (0,), b"b"))},
        "labels as a 10^9 range": {b"data": b"\x00" * 3072, b"fine_labels": _Call(range, (10**9,))},
        "bytes of 2^40 via bytearray": {b"data": _Call(bytearray, (2**40,)), b"fine_labels": [1, 2]},
        "data a list of 10^6 ints": {b"data": [0] * 10**6, b"fine_labels": [0, 1]},
    }
    for name, obj in bombs.items():
        d = b.add("cifar", name, lambda d: ["train", "--dataset", "cifar100", "--data-dir", str(d / "data"), "--epochs",
                  "1", "--out", str(d / "out" / "m.pt")], "refuse", needle="cifar")  # fmt: skip
        folder = write_cifar(d / "data")
        (folder / "train").write_bytes(pickle.dumps(obj, protocol=2))


# -- options and their combinations ------------------------------------------------------------------


def _option_cases(b: Any, m: dict[str, Path]) -> None:
    real = str(b.shared / "real.pt")

    def add(name: str, argv: Callable[[Path], list[str]], needle: str | None, expect: str = "refuse",
            out: str | None = "out", prep: Callable[[Path], None] | None = None) -> None:  # fmt: skip
        d = b.add("options", name, argv, expect, needle=needle, out=out)
        if prep is not None:
            prep(d)

    for v in ("nan", "inf", "-inf", "1e400", "-1", "0"):
        add(f"attack --local-lr {v}", lambda d, v=v: ["attack", "--local-steps", "2", "--local-lr", v, *TINY, "--out",
            str(d / "out")], "--local-lr", "refuse" if v not in ("-1", "0") else "either")  # fmt: skip
        add(f"evaluate --fl-lr {v}", lambda d, v=v: ["evaluate", "--round", "2", "--fl-lr", v, *EVAL, "--out",
            str(d / "out")], "--fl-lr", "refuse" if v not in ("-1", "0") else "either")  # fmt: skip
        add(f"export --format nir --dt {v}", lambda d, v=v: ["export", real, "--format", "nir", "--dt", v, "--out",
            str(d / "out" / "m.nir")], "--dt")  # fmt: skip
    for opt in ("--dp-clip", "--dp-noise", "--mu", "--alpha", "--prune-keep", "--secagg-clip", "--dp-epsilon",
                "--dp-delta"):  # fmt: skip
        add(f"fl {opt} nan", lambda d, o=opt: ["fl", "--clients", "3", "--rounds", "1", o, "nan", "--out",
            str(d / "out")], opt)  # fmt: skip
    for cmd in (["train", "--epochs", "1"], ["evaluate", *EVAL], ["attack", *TINY], ["fl", "--clients", "3", "--rounds",
                "1"], ["export", real], ["import", str(m["nir"]), "--dt", "1e-4"]):  # fmt: skip
        ext = {"train": "m.pt", "export": "m.net", "import": "m.pt"}.get(cmd[0], "run")
        add(f"{cmd[0]} --out /proc/self/cwd/{ext}", lambda d, c=cmd, e=ext: [*c, "--out", f"/proc/self/cwd/{e}"],
            "/proc", out=None)  # fmt: skip
        add(f"{cmd[0]} --out /proc/self/root/tmp/x", lambda d, c=cmd, e=ext: [*c, "--out", f"/proc/self/root/tmp/{e}"],
            "/proc", out=None)  # fmt: skip
    add("export --out the checkpoint itself", lambda d: ["export", str(d / "c.pt"), "--out", str(d / "c.pt")], "--out",
        out=None, prep=lambda d: shutil.copyfile(real, d / "c.pt"))  # fmt: skip
    add("export --format nir --out the checkpoint itself", lambda d: ["export", str(d / "c.pt"), "--format", "nir",
        "--out", str(d / "c.pt")], "--out", out=None, prep=lambda d: shutil.copyfile(real, d / "c.pt"))  # fmt: skip
    add("evaluate --out the --model file", lambda d: ["evaluate", "--model", str(d / "c.pt"), *EVAL, "--out",
        str(d / "c.pt")], "--out", out=None, prep=lambda d: shutil.copyfile(real, d / "c.pt"))  # fmt: skip
    add("train --out a link to the real checkpoint", lambda d: ["train", "--epochs", "1", "--out", str(d / "l.pt")],
        None, "either", out="l.pt", prep=lambda d: os.symlink(d / "c.pt", d / "l.pt") or shutil.copyfile(real,
        d / "c.pt"))  # fmt: skip
    add("fl --backend flower --ray-address unreachable", lambda d: ["fl", "--backend", "flower", "--ray-address",
        "10.255.255.1:6379", "--clients", "3", "--rounds", "1", "--out", str(d / "out")], "--ray-address")  # fmt: skip
    add("fl --backend flower --ray-address not an address", lambda d: ["fl", "--backend", "flower", "--ray-address",
        "::::", "--clients", "3", "--rounds", "1", "--out", str(d / "out")], "--ray-address")  # fmt: skip
    add("evaluate --encoding direct on a binary chip", lambda d: ["evaluate", "--profile", "loihi1", "--encoding",
        "direct", *TINY, "--out", str(d / "out")], "direct")  # fmt: skip
    add("evaluate --profile ''", lambda d: ["evaluate", "--profile", "", *EVAL, "--out", str(d / "out")], "--profile")
    add("evaluate --profile ',,'", lambda d: ["evaluate", "--profile", ",,", *EVAL, "--out", str(d / "out")],
        "--profile")  # fmt: skip
    add("evaluate --attack ''", lambda d: ["evaluate", "--attack", "", *TINY, "--out", str(d / "out")], None)
    add("evaluate --attack nope", lambda d: ["evaluate", "--attack", "nope", *TINY, "--out", str(d / "out")], "nope")
    add("evaluate --threat-model malicious --model (ANN row from a file)", lambda d: ["evaluate", "--threat-model",
        "malicious", "--model", real, *TINY, "--out", str(d / "out")], None, "either")  # fmt: skip
    add("evaluate --victims 10^9", lambda d: ["evaluate", "--victims", str(10**9), "--out", str(d / "out")],
        "--victims")  # fmt: skip
    add("evaluate --batch-size 10^6", lambda d: ["evaluate", "--batch-size", str(10**6), "--victims", "1",
        "--out", str(d / "out")], "batch")  # fmt: skip
    add("evaluate --clients 10^6", lambda d: ["evaluate", "--clients", str(10**6), *EVAL, "--out", str(d / "out")],
        None)  # fmt: skip
    add("attack --updates and --model together", lambda d: ["attack", "--updates", str(b.shared / "fl" / "updates"),
        "--model", "ann", *TINY, "--recipe", "idlg", "--out", str(d / "out")], None, "either")  # fmt: skip
    add("attack --updates with another --dataset", lambda d: ["attack", "--updates", str(b.shared / "fl" / "updates"),
        "--dataset", "faces", *TINY, "--out", str(d / "out")], None)  # fmt: skip
    add("verify --steps 0 (own file)", lambda d: ["verify", real, "--steps", "0"], "--steps", out=None)
    add("verify a checkpoint of a Loihi SNN", lambda d: ["verify", real, "--samples", "2"], "real.pt", out=None)
    add("verify --input a missing file", lambda d: ["verify", str(b.shared / "real.pt"), "--input", str(d / "x.npy")],
        None, out=None)  # fmt: skip
    add("train --device cuda (no CUDA)", lambda d: ["train", "--epochs", "1", "--device", "cuda", "--out",
        str(d / "out" / "m.pt")], None, "either")  # fmt: skip
    add("train --device tpu", lambda d: ["train", "--epochs", "1", "--device", "tpu", "--out", str(d / "out" /
        "m.pt")], "--device")  # fmt: skip
    add("profiles show a checkpoint", lambda d: ["profiles", "show", real], "real.pt", out=None)
    add("profiles show a NIR graph", lambda d: ["profiles", "show", str(m["nir"])], "snntorch.nir", out=None)
    add("datasets list --data-dir /proc/self/cwd", lambda d: ["datasets", "list", "--data-dir", "/proc/self/cwd"],
        None, "either", out=None)  # fmt: skip


def _threat_and_budget_cases(b: Any, m: dict[str, Path]) -> None:
    """FedAvg updates in fresh minibatches and later rounds (``--local-steps``, ``--minibatch``,
    ``--round``) and the memory budget of ``train``, ``fl`` and ``verify`` (``--max-memory``)."""
    real = str(b.shared / "real.pt")

    def add(name: str, argv: Callable[[Path], list[str]], needle: str | None, expect: str = "refuse",
            out: str | None = "out") -> None:  # fmt: skip
        b.add("options", name, argv, expect, needle=needle, out=out)

    def ev(*extra: str) -> Callable[[Path], list[str]]:
        return lambda d: ["evaluate", *EVAL, *extra, "--out", str(d / "out")]

    add("evaluate --minibatch 3 of a batch of 4", ev("--batch-size", "4", "--local-steps", "2", "--minibatch", "3"),
        "--minibatch")  # fmt: skip
    add("evaluate --minibatch 2, one local step", ev("--batch-size", "4", "--minibatch", "2"), "--minibatch")
    add("evaluate --minibatch 0", ev("--minibatch", "0"), "--minibatch")
    add("evaluate --local-steps 0", ev("--local-steps", "0"), "--local-steps")
    add("evaluate --local-steps 10^6", ev("--local-steps", str(10**6)), "--local-steps")
    add("evaluate --local-steps 2 on speck", ev("--local-steps", "2", "--profile", "speck"), "--local-steps")
    add("evaluate --local-steps 2 on a conv model", ev("--local-steps", "2", "--arch", "conv"), "--local-steps")
    add("evaluate --local-steps 2 --model FILE", ev("--local-steps", "2", "--model", real), "--local-steps")
    add("evaluate --local-steps 2 --threat-model malicious", ev("--local-steps", "2", "--threat-model", "malicious"),
        "--local-steps")  # fmt: skip
    add("evaluate --round 2 --threat-model malicious", ev("--round", "2", "--threat-model", "malicious"), "--round")
    add("evaluate one local epoch of 4 steps of 1 (valid)", ev("--batch-size", "4", "--local-steps", "4",
        "--minibatch", "1", "--profile", "float32"), None, "ok")  # fmt: skip
    add("attack --minibatch 3 of a batch of 4", lambda d: ["attack", *TINY, "--batch-size", "4", "--local-steps", "2",
        "--minibatch", "3", "--out", str(d / "out")], "--minibatch")  # fmt: skip
    add("attack --minibatch with --updates", lambda d: ["attack", "--updates", str(b.shared / "fl" / "updates"),
        *TINY, "--minibatch", "1", "--out", str(d / "out")], "--minibatch")  # fmt: skip
    add("study --round 0", lambda d: ["study", "--datasets", "digits", "--round", "0", "--out", str(d / "out")],
        "--round")  # fmt: skip
    add("study --ablate reset=halfway", lambda d: ["study", "--datasets", "digits", "--ablate", "reset=halfway",
        "--out", str(d / "out")], "reset='halfway'")  # fmt: skip
    add("study --ablate payload=count", lambda d: ["study", "--datasets", "digits", "--ablate", "payload=count",
        "--out", str(d / "out")], "payload='count'")  # fmt: skip
    add("study --ablate surrogate_shape=", lambda d: ["study", "--datasets", "digits", "--ablate", "surrogate_shape=",
        "--out", str(d / "out")], "surrogate_shape=V1")  # fmt: skip
    add("study --local-steps 3 dividing no batch", lambda d: ["study", "--datasets", "digits", "--batches", "4",
        "--local-steps", "3", "--victims", "1", "--min-victims", "1", "--iterations", "1", "--train-epochs", "0",
        "--attack", "idlg", "--out", str(d / "out")], None, "either")  # fmt: skip
    for size in ("1K", "0", "-1G", "nan", "9" * 40 + "G", "1Q"):
        add(f"train --max-memory {size[:12]}", lambda d, s=size: ["train", "--epochs", "1", "--max-memory", s,
            "--out", str(d / "out" / "m.pt")], "--max-memory")  # fmt: skip
    add("train --max-memory 1M (a step does not fit)", lambda d: ["train", "--epochs", "1", "--max-memory", "1M",
        "--out", str(d / "out" / "m.pt")], "--max-memory")  # fmt: skip
    add("fl --max-memory 1M (a round does not fit)", lambda d: ["fl", "--clients", "3", "--rounds", "1",
        "--max-memory", "1M", "--out", str(d / "out")], "--max-memory")  # fmt: skip
    add("fl --max-memory 1K", lambda d: ["fl", "--clients", "3", "--rounds", "1", "--max-memory", "1K", "--out",
        str(d / "out")], "--max-memory")  # fmt: skip
    from neurofl_testing.redteam_cases import SHIPPED_NET

    add("verify --max-memory 1K", lambda d: ["verify", str(SHIPPED_NET), "--samples", "2", "--max-memory", "1K"],
        "--max-memory", out=None)  # fmt: skip
    add("verify --max-memory 1M (one Lava run does not fit)", lambda d: ["verify", str(SHIPPED_NET), "--samples", "2",
        "--max-memory", "1M"], "--max-memory", out=None)  # fmt: skip
