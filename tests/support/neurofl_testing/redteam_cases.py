"""The red-team cases: ~300 hostile inputs and misuses of the CLI, built in a workspace folder.

:func:`build` writes the real artefacts once (a checkpoint trained by ``neurofl.train``, the
shipped NetX model, a capture written by the federated engine, datasets in the real on-disk
layouts, the shipped profile), then one folder per case with its crafted inputs, and returns the
:class:`~neurofl_testing.redteam.Case` list. Cases marked ``ci`` form the fast subset the test
suite runs (``tests/reliability/test_redteam.py``).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import shutil
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from neurofl_testing.hostile import FakeStorage, FakeTensor, torch_zip
from neurofl_testing.layouts import cifar_dict, write_gesture_npy, write_idx, write_nmnist_bin
from neurofl_testing.redteam import Case

ROOT = Path(__file__).resolve().parents[3]
SHIPPED_NET = ROOT / "netx_models" / "digits_loihi2.net"
SEEDS = ["3", [3], -1, 2**32, 2**70, True, 1.5, None]
LAVA_MEMORY = 8 << 30  # address space for cases that run Lava's CPU runtime (it needs ~5 GB)
_STORAGE = {torch.float32: torch.FloatStorage, torch.int64: torch.LongStorage, torch.float64: torch.DoubleStorage,
            torch.uint8: torch.ByteStorage, torch.bool: torch.BoolStorage, torch.int32: torch.IntStorage}  # fmt: skip


class Builder:
    """Collects cases; each gets ``folder`` = ``root/<category>/<n>``."""

    def __init__(self, root: Path):
        self.root = root
        self.shared = root / "shared"
        self.cases: list[Case] = []

    def folder(self, category: str) -> Path:
        d = self.root / "cases" / category / f"{sum(c.category == category for c in self.cases):03d}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def add(self, category: str, name: str, argv: Callable[[Path], list[str]], expect: str = "refuse",
            needle: Callable[[Path], str | None] | str | None = None, out: str | None = "out",
            ci: bool = False) -> Path:  # fmt: skip
        d = self.folder(category)
        o = d / out if out else None
        n = needle(d) if callable(needle) else needle
        self.cases.append(Case(category, name, argv(d), expect, d, o, n, ci))
        return d


# -- torch.save payloads with crafted tensors ---------------------------------------------------------


def to_fake(obj: Any, counter: list[int] | None = None) -> Any:
    """``obj`` with every tensor as a :class:`FakeTensor` over its own bytes (crafting starts here)."""
    counter = counter if counter is not None else [0]
    if isinstance(obj, torch.Tensor):
        t = obj.detach().contiguous()
        key = str(counter[0])
        counter[0] += 1
        stride = tuple(t.stride())
        storage = FakeStorage(key, t.numpy().tobytes(), t.numel(), _STORAGE[t.dtype])
        return FakeTensor(storage, 0, tuple(t.shape), stride)
    if isinstance(obj, dict):
        return {k: to_fake(v, counter) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_fake(v, counter) for v in obj)
    return obj


def _fake_float(values: int, size: tuple, stride: tuple, offset: int = 0, numel: int | None = None,
                key: str = "999") -> FakeTensor:  # fmt: skip
    return FakeTensor(FakeStorage(key, bytes(4 * values), values if numel is None else numel), offset, size, stride)


TENSOR_TRICKS: dict[str, Callable[[], FakeTensor]] = {
    "numel-beyond-record": lambda: _fake_float(6, (2, 3), (3, 1), numel=10**9),
    "numel-negative": lambda: _fake_float(6, (2, 3), (3, 1), numel=-1),
    "sizes-1e12": lambda: _fake_float(6, (10**6, 10**6), (10**6, 1)),
    "sizes-overflow-int64": lambda: _fake_float(6, (2**40, 2**40), (1, 1)),
    "stride-0-1e9": lambda: _fake_float(1, (10**5, 10**4), (0, 0)),
    "stride-0-small": lambda: _fake_float(1, (4096, 4096), (0, 0)),
    "overlapping-strides": lambda: _fake_float(8, (4, 4), (1, 1)),
    "offset-beyond-storage": lambda: _fake_float(6, (2, 3), (3, 1), offset=100),
    "negative-dimension": lambda: _fake_float(6, (2, -3), (3, 1)),
    "negative-stride": lambda: _fake_float(6, (2, 3), (-3, 1)),
    "huge-offset": lambda: _fake_float(6, (2, 3), (3, 1), offset=2**62),
    "shape-not-tuple": lambda: FakeTensor(FakeStorage("998", bytes(24), 6), 0, [2, 3], [3, 1]),
}


def _zip_variants(real: bytes) -> dict[str, bytes]:
    """Archive-level tricks on a real torch.save file."""
    src = zipfile.ZipFile(io.BytesIO(real))
    names = src.namelist()
    prefix = names[0].split("/")[0]

    def rebuild(edit: Callable[[str, bytes], tuple[str, bytes] | None], method: int = zipfile.ZIP_STORED,
                extra: dict[str, bytes] | None = None) -> bytes:  # fmt: skip
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", method) as z:
            for n in names:
                got = edit(n, src.read(n))
                if got is not None:
                    z.writestr(got[0], got[1])
            for n, data in (extra or {}).items():
                z.writestr(n, data)
        return out.getvalue()

    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        for n in names:
            z.writestr(n, src.read(n))
        z.writestr(f"{prefix}/data/777", bytes(200 << 20))  # 200 MB of zeros in ~200 KB
    return {
        "deflated-entries": rebuild(lambda n, d: (n, d), zipfile.ZIP_DEFLATED),
        "zip-bomb-record": bomb.getvalue(),
        "torchscript-constants": rebuild(lambda n, d: (n, d), extra={f"{prefix}/constants.pkl": b"\x80\x02]q\x00."}),
        "duplicate-entry": rebuild(lambda n, d: (n, d), extra={f"{prefix}/version": b"3\n"}),
        "missing-data-pkl": rebuild(lambda n, d: None if n.endswith("data.pkl") else (n, d)),
        "missing-record": rebuild(lambda n, d: None if n.endswith("data/0") else (n, d)),
        "short-record": rebuild(lambda n, d: (n, d[:-4]) if n.endswith("data/0") else (n, d)),
        "foreign-entry": rebuild(lambda n, d: (n, d), extra={"../evil": b"x"}),
        "truncated-half": real[: len(real) // 2],
        "truncated-tail": real[:-22],
        "legacy-pickle": _legacy_pickle(),
        "pickle-runs-code": _code_pickle(prefix),
        "empty": b"",
        "text": b"not a checkpoint\n",
    }


def _legacy_pickle() -> bytes:
    buf = io.BytesIO()
    torch.save({"header": "{}", "state_dict": {}}, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


class _Touch:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.path}",))


def _code_pickle(prefix: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        evil = {"header": "{}", "state_dict": _Touch("/tmp/neurofl-redteam-pwned")}
        z.writestr(f"{prefix}/data.pkl", pickle.dumps(evil))
        z.writestr(f"{prefix}/version", "3\n")
    return out.getvalue()


# -- real artefacts -------------------------------------------------------------------------------------


def _real_checkpoint(shared: Path) -> Path:
    from neurofl.data import load_dataset, split_dataset
    from neurofl.models import Architecture
    from neurofl.models.checkpoint import save_checkpoint
    from neurofl.profiles import load_profile
    from neurofl.train import train_model

    path = shared / "real.pt"
    splits = split_dataset(load_dataset("digits"), 0)
    arch = Architecture(splits.clients.input_shape, splits.clients.classes, hidden=(16,))
    res = train_model("snn", arch, load_profile("loihi2"), splits.clients, splits.test, 1, seed=0)
    save_checkpoint(path, res.model, "snn", arch, res.profile, "digits", res.accuracy, {"seed": 0})
    return path


def _real_captures(shared: Path) -> Path:
    from neurofl.data import load_dataset
    from neurofl.federated import fl_config
    from neurofl.federated.engine import run_local
    from neurofl.federated.task import make_task
    from neurofl.profiles import load_profile

    cfg = fl_config({"clients": 6, "rounds": 1, "batch": 2, "capture_rounds": [1], "capture_clients": 2})
    run_local(make_task(load_dataset("digits"), "snn", load_profile("loihi2"), cfg), shared / "fl")
    other = fl_config({"clients": 6, "rounds": 1, "batch": 2, "seed": 5, "capture_rounds": [1], "capture_clients": 1})
    run_local(make_task(load_dataset("digits"), "snn", load_profile("loihi2"), other), shared / "fl-other")
    return shared / "fl" / "updates"


def write_mnist(folder: Path, n_train: int = 60, n_test: int = 20, compress: bool = False) -> None:
    """A valid MNIST tree: 28x28 images, labels cycling through 0..9."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), compress)
        write_idx(folder / f"{split}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8), compress)


def write_cifar(root: Path, train: dict | None = None, test: dict | None = None) -> Path:
    """A valid cifar-100-python folder (40 + 20 entries, labels cycling through 0..9)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, n, given in (("train", 40, train), ("test", 20, test)):
        d = cifar_dict(rng, n)
        d[b"fine_labels"] = [i % 10 for i in range(n)]
        (folder / name).write_bytes(pickle.dumps(given if given is not None else d, protocol=2))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"c%d" % i for i in range(100)]}))
    return folder


def _gesture(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.stack([rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n),
                     np.sort(rng.integers(0, 6000, n))], axis=1).astype(np.float64)  # fmt: skip


def write_gesture(root: Path) -> Path:
    """A valid DVSGesture layout: labels 0 and 1, two users, train and test."""
    rng = np.random.default_rng(0)
    for split in ("ibmGestureTrain", "ibmGestureTest"):
        for user in ("user01_led", "user02_led"):
            for label in (0, 1):
                write_gesture_npy(root / "DVSGesture" / split / user / f"{label}.npy", _gesture(50, rng))
    return root / "DVSGesture" / "ibmGestureTrain" / "user01_led"


def write_nmnist(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split in ("Train", "Test"):
        for digit in (0, 1):
            for i in range(2):
                n = 30
                xy = rng.integers(0, 34, (2, n))
                t = np.sort(rng.integers(0, 1 << 20, n))
                write_nmnist_bin(root / "NMNIST" / split / str(digit) / f"{i:05d}.bin", xy[0], xy[1],
                                 rng.integers(0, 2, n), t)  # fmt: skip
    return root / "NMNIST" / "Train" / "0"


# -- the categories -------------------------------------------------------------------------------------


def _checkpoint_cases(b: Builder, real: Path) -> None:
    payload = torch.load(real, weights_only=True)
    header, state = json.loads(payload["header"]), payload["state_dict"]
    names = sorted(state)

    def export(d: Path) -> list[str]:
        return ["export", str(d / "c.pt"), "--out", str(d / "out" / "m.net"), "--json"]

    def save(d: Path, h: dict | str | None = None, sd: Any = None, raw: bytes | None = None) -> None:
        if raw is not None:
            (d / "c.pt").write_bytes(raw)
            return
        text = h if isinstance(h, str) else json.dumps(h if h is not None else header)
        torch.save({"header": text, "state_dict": state if sd is None else sd}, d / "c.pt")

    def case(name: str, make: Callable[[Path], None], expect: str = "refuse", ci: bool = False) -> None:
        d = b.add("checkpoint", name, export, expect, needle="c.pt" if expect == "refuse" else None, ci=ci)
        make(d)

    case("real checkpoint exports", lambda d: shutil.copyfile(real, d / "c.pt"), "ok", ci=True)

    def with_header(path: list[str], value: Any) -> Callable[[Path], None]:
        def make(d: Path) -> None:
            h = json.loads(json.dumps(header))
            t = h
            for k in path[:-1]:
                t = t[k]
            if value is _DROP:
                del t[path[-1]]
            else:
                t[path[-1]] = value
            save(d, h)

        return make

    for steps in (10000, 1025, 65536, 0, -1, "16", 16.5, None, 10**30):
        case(f"time_steps = {steps!r}", with_header(["profile", "simulation", "time_steps"], steps), ci=steps == 10000)
    for seed in SEEDS:
        case(f"seed = {seed!r}", with_header(["seed"], seed), ci=seed in ("3", -1))
    for acc in (float("nan"), 2.0, "x", [0.5]):
        case(f"accuracy = {acc!r}", with_header(["accuracy"], acc))
    for key, value in (("hidden", [10**6] * 4), ("hidden", [0]), ("hidden", list(range(1, 100))), ("classes", 1),
                       ("classes", 10**9), ("input_shape", [1, 9, 9]), ("input_shape", []), ("weight_scale", 1e300),
                       ("neuron", {"threshold": -1}), ("type", "conv"), ("type", "rnn"), ("extra", 1)):  # fmt: skip
        case(f"architecture.{key} = {str(value)[:30]}", with_header(["architecture", key], value))
    for section, key, value in (("weights", "bits", 0), ("weights", "bits", 99), ("neuron", "decay_bits", 4),
                                ("spikes", "payload", "analog"), ("resources", "cores", 0), ("update", "bits", 1),
                                ("weights", "scale", 10**40), ("simulation", "time_steps", "x")):  # fmt: skip
        case(f"profile.{section}.{key} = {value!r}", with_header(["profile", section, key], value))
    case("profile without [resources]", with_header(["profile", "resources"], _DROP))
    case("kind = ann", with_header(["kind"], "ann"))
    case("kind = 'x'", with_header(["kind"], "x"))
    case("format = other", with_header(["format"], "neurofl-checkpoint/9"))
    case("dataset = nope", with_header(["dataset"], "nope"))
    case("dataset = mnist (no data dir)", with_header(["dataset"], "mnist"))
    case("dataset = faces (other input shape)", with_header(["dataset"], "faces"))
    case("header not JSON", lambda d: save(d, "{not json"))
    case("header a JSON list", lambda d: save(d, "[1, 2]"))
    case("header nested 100000 deep", lambda d: save(d, "[" * 100000 + "]" * 100000))
    case("header 64 MB string", lambda d: save(d, json.dumps({**header, "pad": "x" * (64 << 20)})), "either")
    shape = (16, 64, 1, 1, 1)
    bad_tensors = (
        ("NaN", torch.full(shape, float("nan"))),
        ("inf", torch.full(shape, float("inf"))),
        ("wrong shape", torch.zeros(3, 3)),
        ("int64", torch.zeros(shape, dtype=torch.int64)),
        ("complex", torch.zeros(shape, dtype=torch.complex64)),
        ("empty", torch.zeros(0)),
    )
    for i, (label, t) in enumerate(bad_tensors):
        name = names[i % len(names)]
        case(f"state {name} {label}", lambda d, n=name, t=t: save(d, sd={**state, n: t}))
    case("state entry missing", lambda d: save(d, sd={k: v for k, v in state.items() if k != names[0]}))
    case("state entry extra", lambda d: save(d, sd={**state, "blocks.9.synapse.weight": torch.zeros(2)}))
    case("state not a dict", lambda d: save(d, sd=[1, 2]))
    for trick, make in TENSOR_TRICKS.items():
        def crafted(d: Path, make: Callable[[], FakeTensor] = make) -> None:
            fake = to_fake({"header": json.dumps(header), "state_dict": dict(state)})
            fake["state_dict"][names[-1]] = make()
            (d / "c.pt").write_bytes(torch_zip(fake))
        case(f"tensor: {trick}", crafted, ci=trick in ("numel-beyond-record", "sizes-1e12", "stride-0-1e9"))
    nested: list = []
    cur = nested
    for _ in range(200):
        cur.append([])
        cur = cur[0]
    case("containers nested 200 deep", lambda d: save(d, sd=nested))
    for trick, raw in _zip_variants(real.read_bytes()).items():
        case(f"archive: {trick}", lambda d, raw=raw: save(d, raw=raw), ci=trick in ("zip-bomb-record", "legacy-pickle"))
    case("checkpoint is a FIFO", lambda d: os.mkfifo(d / "c.pt"), ci=True)
    case("checkpoint is a folder", lambda d: (d / "c.pt").mkdir())
    case("checkpoint is /dev/zero", lambda d: os.symlink("/dev/zero", d / "c.pt"))
    case("checkpoint is missing", lambda d: None)
    case("checkpoint is a dangling link", lambda d: os.symlink(d / "nowhere", d / "c.pt"))


_DROP = object()


def _netx_cases(b: Builder) -> None:
    def verify(d: Path) -> list[str]:
        return ["verify", str(d / "m.net"), "--samples", "2", "--json"]

    def case(name: str, edit: Callable[[h5py.File, Path], None] | None, expect: str = "refuse", ci: bool = False,
             raw: Callable[[Path], None] | None = None) -> None:  # fmt: skip
        d = b.add("netx", name, verify, expect, needle="m.net" if expect == "refuse" else None, out=None, ci=ci)
        if raw is not None:
            raw(d)
            return
        shutil.copyfile(SHIPPED_NET, d / "m.net")
        if edit is not None:
            with h5py.File(d / "m.net", "r+") as f:
                edit(f, d)

    def replace(key: str, data: Any, **kw: Any) -> Callable[[h5py.File, Path], None]:
        def edit(f: h5py.File, _d: Path) -> None:
            del f[key]
            f.create_dataset(key, data=data, **kw)

        return edit

    def header(mut: Callable[[dict], None]) -> Callable[[h5py.File, Path], None]:
        def edit(f: h5py.File, _d: Path) -> None:
            h = json.loads(f["neurofl"].attrs["header"])
            mut(h)
            f["neurofl"].attrs["header"] = json.dumps(h)

        return edit

    w = h5py.File(SHIPPED_NET, "r")["layer/1/weight"][()]
    case("shipped model verifies", None, "ok", ci=True)
    b.cases[-1].memory = LAVA_MEMORY
    case("float16 weights", replace("layer/1/weight", w.astype(np.float16)), ci=True)
    case("int16 weights", replace("layer/1/weight", w.astype(np.int16)), "either")
    b.cases[-1].memory = LAVA_MEMORY
    case("complex weights", replace("layer/1/weight", w.astype(np.complex64)))
    case("NaN weight", replace("layer/1/weight", np.where(np.arange(w.size).reshape(w.shape) == 3, np.nan, w)))
    case("weight 1000", replace("layer/1/weight", w * 0 + 1000))
    case("weight 1.5", replace("layer/1/weight", w * 0 + 1.5))
    case("3-D weight", replace("layer/1/weight", w[None]))
    case("weight gzip-compressed", replace("layer/1/weight", w, compression="gzip"))
    case("weight chunked, never written", lambda f, d: (f.__delitem__("layer/1/weight"),
         f.create_dataset("layer/1/weight", shape=(128, 64), dtype="f4", chunks=(1, 64))))  # fmt: skip
    case("dataset claims 10^12 elements", lambda f, d: (f.__delitem__("layer/1/weight"),
         f.create_dataset("layer/1/weight", shape=(10**6, 10**6), dtype="f8", chunks=(1, 1024))), ci=True)  # fmt: skip
    case("NUL in layer type", replace("layer/1/type", np.array([b"den\x00se"], "S10")), ci=True)
    case("NUL after layer type", replace("layer/1/type", np.array([b"dense\x00x"], "S10")))
    case("NUL in neuron type", replace("layer/1/neuron/type", np.bytes_(b"CU\x00BA")))
    case("control char in neuron type", replace("layer/1/neuron/type", np.bytes_(b"CUBA\x07")))
    case("non-ASCII layer type", replace("layer/1/type", np.array(["dénse".encode()], "S10")))
    case("huge delay", lambda f, d: f["layer/1"].create_dataset("delay", data=np.full(w.shape, 10**6)), ci=True)
    case("delay 1", lambda f, d: f["layer/1"].create_dataset("delay", data=np.ones(w.shape)))
    case("bias", lambda f, d: f["layer/1"].create_dataset("bias", data=np.ones(w.shape[0])), "either")  # Lava runs it
    case("messageBits", lambda f, d: f["layer/1/neuron"].create_dataset("messageBits", data=24))
    case("weight_rec", lambda f, d: f["layer/1"].create_dataset("weight_rec", data=w))
    case("dense shape 10^9", replace("layer/1/shape", np.array([10**9])), ci=True)
    case("dense shape [64]", replace("layer/1/shape", np.array([64])))
    case("outFeatures 10^9", replace("layer/1/outFeatures", np.int64(10**9)))
    case("inFeatures 3", replace("layer/1/inFeatures", np.int64(3)))
    case("input layer with a neuron group", lambda f, d: f["layer/0"].create_group("neuron"))
    case("input shape 10^7", replace("layer/0/shape", np.array([10**7, 1, 1])))
    case("input shape 5-D", replace("layer/0/shape", np.array([1, 1, 1, 8, 8])))
    for key, value in (("vThMant", 0), ("vThMant", 1 << 20), ("iDecay", 5000), ("vDecay", -1), ("refDelay", 10**9),
                       ("iDecay", 1.5), ("gradedSpike", 7)):  # fmt: skip
        case(f"neuron {key} = {value}", replace(f"layer/1/neuron/{key}", np.asarray(value)))
    case("neuron vThMant missing", lambda f, d: f.__delitem__("layer/2/neuron/vThMant"))
    case("neuron type SDNN", replace("layer/1/neuron/type", np.bytes_(b"SDNN")))
    case("layer type pool", replace("layer/2/type", np.array([b"pool"], "S10")))
    conv = np.array([b"conv"], "S10")
    case("extra conv layer", lambda f, d: f["layer"].create_group("3").create_dataset("type", data=conv))
    case("layers named 0, 1, 5", lambda f, d: f["layer"].move("2", "5"))
    case("no /layer", lambda f, d: f.__delitem__("layer"))
    case("external link", lambda f, d: (f.__delitem__("layer/2/weight"),
         f["layer/2"].__setitem__("weight", h5py.ExternalLink("/etc/hostname", "/x"))))  # fmt: skip
    case("soft link", lambda f, d: (f.__delitem__("layer/2/weight"),
         f["layer/2"].__setitem__("weight", h5py.SoftLink("/layer/1/weight"))))  # fmt: skip
    def external(f: h5py.File, d: Path) -> None:
        del f["layer/2/weight"]
        (d / "raw.bin").write_bytes(bytes(5120))
        f.create_dataset("layer/2/weight", shape=(10, 128), dtype="f4", external=[(str(d / "raw.bin"), 0, 5120)])

    case("external raw storage", external)
    for hs in (10000, 65536, 0, "16", 17):
        case(f"header time_steps = {hs!r}", header(lambda h, hs=hs: h.__setitem__("time_steps", hs)))
    case("header profile time_steps 10000",
         header(lambda h: (h["profile"]["simulation"].__setitem__("time_steps", 10000),
                           h.__setitem__("time_steps", 10000))))  # fmt: skip
    for seed in SEEDS:
        case(f"header seed = {seed!r}", header(lambda h, s=seed: h.__setitem__("seed", s)), ci=seed == [3])
    case("header input_frac_bits 99", header(lambda h: h.__setitem__("input_frac_bits", 99)))
    case("header encoding rate on a direct profile", header(lambda h: h.__setitem__("input_encoding", "rate")))
    case("header kind ann", header(lambda h: h.__setitem__("kind", "ann")))
    case("header architecture hidden [64]", header(lambda h: h["architecture"].__setitem__("hidden", [64])))
    case("header not JSON", lambda f, d: f["neurofl"].attrs.__setitem__("header", "{"))
    case("header nested 10^5 deep", lambda f, d: f["neurofl"].attrs.__setitem__("header", "[" * 100000 + "]" * 100000))
    case("header 4 MB", lambda f, d: f["neurofl"].attrs.__setitem__("header", "x" * (4 << 20)))
    case("header an int array", lambda f, d: f["neurofl"].attrs.__setitem__("header", np.arange(10)))
    case("no header", lambda f, d: f["neurofl"].attrs.__delitem__("header"))
    case("--profile loihi1 for a loihi2 file", None, "refuse")
    b.cases[-1].argv += ["--profile", "loihi1"]
    b.cases[-1].needle = "loihi2"
    case("file is a FIFO", None, raw=lambda d: os.mkfifo(d / "m.net"), ci=True)
    case("file is a folder", None, raw=lambda d: (d / "m.net").mkdir())
    case("file is empty", None, raw=lambda d: (d / "m.net").write_bytes(b""))
    case("file is text", None, raw=lambda d: (d / "m.net").write_text("not hdf5"))
    case("file truncated", None, raw=lambda d: (d / "m.net").write_bytes(SHIPPED_NET.read_bytes()[:3000]))
    case("file is /dev/urandom", None, raw=lambda d: os.symlink("/dev/urandom", d / "m.net"))


def _capture_cases(b: Builder, updates: Path, other: Path) -> None:
    files = sorted(updates.glob("*.pt"))
    payload = torch.load(files[0], weights_only=True)

    def attack(d: Path) -> list[str]:
        return ["attack", "--updates", str(d / "updates"), "--iterations", "1", "--out", str(d / "out"), "--json"]

    def case(name: str, make: Callable[[Path], None], expect: str = "refuse", ci: bool = False,
             needle: str | None = "updates") -> None:  # fmt: skip
        d = b.add("captures", name, attack, expect, needle=needle if expect == "refuse" else None, ci=ci)
        (d / "updates").mkdir()
        make(d / "updates")

    def copy_real(u: Path) -> None:
        for f in files:
            shutil.copyfile(f, u / f.name)

    def with_field(key: str, value: Any) -> Callable[[Path], None]:
        def make(u: Path) -> None:
            d = dict(payload)
            d[key] = value
            torch.save(d, u / files[0].name)

        return make

    case("real captures attacked", copy_real, "ok", ci=True)
    case("two runs in one folder", lambda u: (copy_real(u), shutil.copyfile(sorted(other.glob("*.pt"))[0],
         u / "round00001_client000005.pt")), ci=True, needle="another run")  # fmt: skip
    case("a FIFO among the updates", lambda u: (copy_real(u), os.mkfifo(u / "round00001_client000009.pt")), ci=True)
    case("a folder named like an update", lambda u: (copy_real(u), (u / "round00001_client000009.pt").mkdir()))
    case("a link to /dev/zero", lambda u: os.symlink("/dev/zero", u / "round00001_client000000.pt"))
    case("empty folder", lambda u: None)
    for key, value in (("local_steps", 10**9), ("local_steps", 0), ("batch", 10**9), ("round", 0), ("round", 10**12),
                       ("client", -5), ("lr", float("inf")), ("lr", 0.0), ("lr", "0.1"), ("kind", "x"),
                       ("model_kind", "cnn"), ("format", "neurofl.captured_update/1"), ("profile", ""),
                       ("run", "0" * 63), ("run", None), ("profile_table", {}), ("profile_table", [1]),
                       ("dataset_identity", {"name": "digits"}), ("dataset", 3), ("true_labels", torch.full((2,), 99)),
                       ("true_inputs", torch.zeros(3, 3)), ("update", {}), ("state_dict", {"x": torch.zeros(2)}),
                       ("arch", {"input_shape": [10**6, 10**6], "classes": 10}), ("arch", None),
                       ("minibatch", 1), ("minibatch", 3), ("minibatch", "2")):  # fmt: skip
        case(f"{key} = {str(value)[:40]}", with_field(key, value), ci=(key, value) in (("local_steps", 10**9),))
    for seed in SEEDS:
        case(f"seed = {seed!r}", with_field("seed", seed), ci=seed == 2**70)
    name = sorted(payload["update"])[0]
    for trick, make in TENSOR_TRICKS.items():
        def crafted(u: Path, make: Callable[[], FakeTensor] = make) -> None:
            fake = to_fake(dict(payload))
            fake["update"][name] = make()
            (u / files[0].name).write_bytes(torch_zip(fake))
        case(f"update tensor: {trick}", crafted, ci=trick == "sizes-1e12")
    nan = {k: torch.full_like(v, float("nan")) for k, v in payload["update"].items()}
    case("update NaN", with_field("update", nan))
    case("name disagrees with content", lambda u: shutil.copyfile(files[0], u / "round00007_client000003.pt"))
    case("truncated file", lambda u: (u / files[0].name).write_bytes(files[0].read_bytes()[:500]))
    d = b.add("captures", "--updates is a file", lambda d: ["attack", "--updates", str(d / "f"), "--out",
              str(d / "out")], "refuse", needle="--updates")  # fmt: skip
    (d / "f").write_text("x")
    b.add("captures", "--updates missing", lambda d: ["attack", "--updates", str(d / "nope"), "--out", str(d / "out")],
          "refuse", needle="--updates")  # fmt: skip


def _idx_cases(b: Builder) -> None:
    def train(d: Path) -> list[str]:
        return ["train", "--dataset", "mnist", "--data-dir", str(d / "data"), "--epochs", "1",
                "--out", str(d / "out" / "m.pt"), "--json"]  # fmt: skip

    def case(name: str, make: Callable[[Path], None], expect: str = "refuse", needle: str | None = "mnist",
             ci: bool = False) -> None:  # fmt: skip
        d = b.add("idx", name, train, expect, needle=needle if expect == "refuse" else None, ci=ci)
        folder = d / "data" / "mnist"
        folder.mkdir(parents=True)
        make(folder)

    def base_then(edit: Callable[[Path], None], compress: bool = False) -> Callable[[Path], None]:
        def make(folder: Path) -> None:
            write_mnist(folder, compress=compress)
            edit(folder)

        return make

    def header(ndim_dims: tuple, type_code: int = 8, data: bytes = b"") -> bytes:
        return bytes([0, 0, type_code, len(ndim_dims)]) + struct.pack(f">{len(ndim_dims)}I", *ndim_dims) + data

    lbl, img = "t10k-labels-idx1-ubyte", "t10k-images-idx3-ubyte"
    case("valid tree", base_then(lambda f: None), "ok", ci=True)
    case("valid gzipped tree", base_then(lambda f: None, compress=True), "ok")
    case("labels claim 10^9", base_then(lambda f: (f / lbl).write_bytes(header((10**9,), data=bytes(4)))), ci=True)
    case("images claim 2^28", base_then(lambda f: (f / img).write_bytes(header((2**28, 1, 1), data=bytes(8)))))
    case("images claim 4G x 4G", base_then(lambda f: (f / img).write_bytes(header((2**32 - 1, 2**32 - 1, 1)))))

    def bomb(folder: Path) -> None:
        write_mnist(folder)
        (folder / img).unlink()
        with gzip.open(folder / f"{img}.gz", "wb") as g:
            g.write(header((2**28 // 784, 28, 28)))
            zeros = bytes(1 << 20)
            for _ in range(500):  # 500 MB of zeros in ~500 KB
                g.write(zeros)

    case("gzip bomb (500 MB in 500 KB)", bomb, ci=True)
    case("gzip corrupt", base_then(lambda f: ((f / img).unlink(),
                                              (f / f"{img}.gz").write_bytes(b"\x1f\x8b" + bytes(30)))))  # fmt: skip
    noise = np.random.default_rng(3).integers(0, 256, 20 * 784, dtype=np.uint8).tobytes()  # incompressible
    case("gzip truncated", base_then(lambda f: ((f / img).unlink(), (f / f"{img}.gz").write_bytes(
        gzip.compress(header((20, 28, 28), data=noise))[:4000]))))  # fmt: skip
    floats = header((20, 28, 28), 0x0D, bytes(4 * 20 * 784))
    case("float images (0x0D)", base_then(lambda f: (f / img).write_bytes(floats)))
    case("NaN float labels", base_then(lambda f: (f / lbl).write_bytes(header((20,), 0x0D, b"\x7f\xc0\x00\x00" * 20))))
    case("images 5x5", base_then(lambda f: (f / img).write_bytes(header((20, 5, 5), data=bytes(20 * 25)))))
    case("images 4-D", base_then(lambda f: (f / img).write_bytes(header((20, 28, 28, 1), data=bytes(20 * 784)))))
    case("labels 200", base_then(lambda f: (f / lbl).write_bytes(header((20,), data=bytes([200]) * 20))))
    case("labels all one class", base_then(lambda f: ((f / lbl).write_bytes(header((20,), data=bytes(20))),
         (f / "train-labels-idx1-ubyte").write_bytes(header((60,), data=bytes(60))))), ci=True)  # fmt: skip
    case("counts disagree", base_then(lambda f: (f / lbl).write_bytes(header((19,), data=bytes(19)))))
    case("trailing data", base_then(lambda f: (f / lbl).write_bytes(header((20,), data=bytes(21)))))
    case("truncated data", base_then(lambda f: (f / img).write_bytes(header((20, 28, 28), data=bytes(100)))))
    case("bad magic", base_then(lambda f: (f / lbl).write_bytes(b"\x01\x02\x08\x01" + bytes(8))))
    case("empty file", base_then(lambda f: (f / lbl).write_bytes(b"")))
    case("labels file is a FIFO", base_then(lambda f: ((f / lbl).unlink(), os.mkfifo(f / lbl))), ci=True)
    case("labels file is a folder", base_then(lambda f: ((f / lbl).unlink(), (f / lbl).mkdir())))
    case("labels file is /dev/zero", base_then(lambda f: ((f / lbl).unlink(), os.symlink("/dev/zero", f / lbl))))
    def zero_images(f: Path) -> None:
        for split in ("train", "t10k"):
            (f / f"{split}-images-idx3-ubyte").write_bytes(header((0, 28, 28)))
            (f / f"{split}-labels-idx1-ubyte").write_bytes(header((0,)))

    case("zero images", base_then(zero_images))
    case("missing files", lambda f: None)


def _cifar_cases(b: Builder) -> None:
    def train(d: Path) -> list[str]:
        return ["train", "--dataset", "cifar100", "--data-dir", str(d / "data"), "--epochs", "1",
                "--out", str(d / "out" / "m.pt"), "--json"]  # fmt: skip

    def case(name: str, train_bytes: bytes | Callable[[Path], None] | None, expect: str = "refuse",
             ci: bool = False) -> None:  # fmt: skip
        d = b.add("cifar", name, train, expect, needle="cifar" if expect == "refuse" else None, ci=ci)
        folder = write_cifar(d / "data")
        if callable(train_bytes):
            (folder / "train").unlink()
            train_bytes(folder / "train")
        elif train_bytes is not None:
            (folder / "train").write_bytes(train_bytes)

    rng = np.random.default_rng(0)
    good = cifar_dict(rng, 40)
    good[b"fine_labels"] = [i % 10 for i in range(40)]

    class Reconstruct:
        def __init__(self, shape: tuple, dtype: bytes = b"B"):
            self.shape, self.dtype = shape, dtype

        def __reduce__(self) -> tuple:
            return (np.core.multiarray._reconstruct, (np.ndarray, self.shape, self.dtype))

    def d_with(**kw: Any) -> bytes:
        d = dict(good)
        for k, v in kw.items():
            d[k.encode()] = v
        return pickle.dumps(d, protocol=2)

    case("valid folder", None, "ok", ci=True)
    small = pickle.dumps({b"data": Reconstruct((50000, 3072)), b"fine_labels": Reconstruct((50000,), b"<i8")},
                         protocol=2)  # fmt: skip
    case(f"{len(small)}-byte file claiming 50,000 images", small, ci=True)
    case("reconstruct 10^12 bytes", pickle.dumps({b"data": Reconstruct((10**6, 10**6))}, protocol=2))
    case("labels all one class", lambda p: (p.write_bytes(d_with(fine_labels=[3] * 40)),
         (p.parent / "test").write_bytes(d_with(fine_labels=[3] * 40))), ci=True)  # fmt: skip
    case("pickle calls os.system", pickle.dumps({b"data": _Touch("/tmp/neurofl-redteam-pwned")}), ci=True)
    case("pickle calls builtins.eval", b"\x80\x02cbuiltins\neval\nq\x00X\x04\x00\x00\x001+1q\x01\x85q\x02Rq\x03.")
    memo = bytearray(pickle.dumps(good, protocol=2))
    i = memo.index(b"q\x01")
    memo[i : i + 2] = b"r" + struct.pack("<I", 2**31)
    case("LONG_BINPUT memo 2^31", bytes(memo))
    case("data float64", d_with(data=np.zeros((40, 3072))))
    case("data NaN float", d_with(data=np.full((40, 3072), np.nan)))
    case("data (40, 10)", d_with(data=np.zeros((40, 10), np.uint8)))
    case("data object array", d_with(data=np.array([object()] * 40, dtype=object)))
    case("labels strings", d_with(fine_labels=["a"] * 40))
    case("labels 300", d_with(fine_labels=[300] * 40))
    case("labels -1", d_with(fine_labels=[-1] * 40))
    case("labels bool", d_with(fine_labels=[True] * 40))
    case("no fine_labels", pickle.dumps({b"data": good[b"data"]}))
    case("a list, not a dict", pickle.dumps([1, 2, 3]))
    case("truncated", pickle.dumps(good)[:1000])
    case("empty", b"")
    case("nested lists 10^5 deep", b"\x80\x02" + b"]" * 100000 + b"a" * 99999 + b".")
    case("train is a FIFO", lambda p: os.mkfifo(p), ci=True)
    case("train is a folder", lambda p: p.mkdir())
    case("train is /dev/zero", lambda p: os.symlink("/dev/zero", p))

    def sparse(p: Path) -> None:
        with open(p, "wb") as f:
            f.truncate(2 << 30)  # 2 GB, sparse: nothing on disk

    case("train is 2 GB", sparse)


def _event_cases(b: Builder) -> None:
    def train(dataset: str) -> Callable[[Path], list[str]]:
        return lambda d: ["train", "--dataset", dataset, "--data-dir", str(d / "data"), "--epochs", "1",
                          "--out", str(d / "out" / "m.pt"), "--json"]  # fmt: skip

    def gcase(name: str, edit: Callable[[Path], None] | None, expect: str = "refuse", ci: bool = False) -> None:
        d = b.add("events", f"gesture: {name}", train("dvs128-gesture"), expect,
                  needle="DVSGesture" if expect == "refuse" else None, ci=ci)  # fmt: skip
        folder = write_gesture(d / "data")
        if edit is not None:
            edit(folder)

    rng = np.random.default_rng(1)
    ev = _gesture(40, rng)

    def npy(arr: np.ndarray) -> Callable[[Path], None]:
        return lambda f: np.save(f / "0.npy", arr)

    gcase("valid layout", None, "ok")
    gcase("header claims 10^12 events", lambda f: (f / "0.npy").write_bytes(
        (f / "1.npy").read_bytes().replace(b"(50, 4)", b"(1000000000000, 4)")), ci=True)  # fmt: skip
    gcase("object array", npy(np.array([[object()] * 4] * 3, dtype=object)))
    gcase("structured dtype", npy(np.zeros(3, dtype=[("x", "i4"), ("y", "i4"), ("p", "i4"), ("t", "i4")])))
    gcase("N x 3", npy(ev[:, :3]))
    gcase("NaN", npy(np.where(np.arange(ev.size).reshape(ev.shape) == 5, np.nan, ev)))
    gcase("x = 128", npy(np.concatenate([ev, [[128, 0, 0, 1]]])))
    gcase("p = 2", npy(np.concatenate([ev, [[0, 0, 2, 1]]])))
    gcase("t < 0", npy(np.concatenate([[[0, 0, 0, -5]], ev])))
    gcase("t = 1e300", npy(np.concatenate([ev, [[0, 0, 0, 1e300]]])))
    gcase("non-integer x", npy(ev + 0.5))
    gcase("truncated data", lambda f: (f / "0.npy").write_bytes((f / "1.npy").read_bytes()[:-40]))
    gcase("header not a dict", lambda f: (f / "0.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00[1, 2, 3]      \n"))
    gcase("header unterminated", lambda f: (f / "0.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f8\n"))
    gcase("recording is a FIFO", lambda f: ((f / "0.npy").unlink(), os.mkfifo(f / "0.npy")), ci=True)
    gcase("recording is /dev/zero", lambda f: ((f / "0.npy").unlink(), os.symlink("/dev/zero", f / "0.npy")))
    gcase("label name x.npy", lambda f: shutil.copyfile(f / "0.npy", f / "x.npy"))
    gcase("label 11", lambda f: shutil.copyfile(f / "0.npy", f / "11.npy"))

    def ncase(name: str, edit: Callable[[Path], None] | None, expect: str = "refuse") -> None:
        d = b.add("events", f"nmnist: {name}", train("nmnist"), expect, needle="NMNIST" if expect == "refuse" else None)
        folder = write_nmnist(d / "data")
        if edit is not None:
            edit(folder)

    ncase("valid layout", None, "ok")
    ncase("size not a multiple of 5", lambda f: (f / "00000.bin").write_bytes(bytes(7)))
    ncase("x = 40", lambda f: (f / "00000.bin").write_bytes(bytes([40, 1, 0, 0, 1])))
    ncase("recording is a FIFO", lambda f: ((f / "00000.bin").unlink(), os.mkfifo(f / "00000.bin")))
    ncase("recording is a folder", lambda f: ((f / "00000.bin").unlink(), (f / "00000.bin").mkdir()))


def _toml_cases(b: Builder) -> None:
    from neurofl.profiles import shipped_profiles

    profile = shipped_profiles()["loihi2"].read_text()

    def show(d: Path) -> list[str]:
        return ["profiles", "show", str(d / "p.toml"), "--json"]

    def pcase(name: str, text: str | bytes | Callable[[Path], None], expect: str = "refuse", ci: bool = False) -> None:
        d = b.add("toml", f"profile: {name}", show, expect, needle="p.toml" if expect == "refuse" else None,
                  out=None, ci=ci)  # fmt: skip
        if callable(text):
            text(d / "p.toml")
        else:
            (d / "p.toml").write_bytes(text.encode() if isinstance(text, str) else text)

    pcase("shipped loihi2 copy", profile, "ok", ci=True)
    pcase("nested 10,000 deep", profile + "\nx = " + "[" * 10000 + "]" * 10000 + "\n", ci=True)
    pcase("nested 50 deep", profile + "\nx = " + "[" * 50 + "]" * 50 + "\n")
    pcase("inline tables nested 5,000 deep", profile + "\nx = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n")
    pcase("400-digit integer", profile.replace("time_steps = 16", "time_steps = " + "9" * 400), ci=True)
    energy = "energy_per_synop_pj = 23.6"
    pcase("400-digit integer in a float key", profile.replace(energy, "energy_per_synop_pj = " + "9" * 400))
    pcase("5000-digit integer", profile.replace("time_steps = 16", "time_steps = " + "9" * 5000))
    pcase("float 1e400 (inf)", profile.replace("energy_per_synop_pj = 23.6", "energy_per_synop_pj = 1e400"))
    pcase("nan", profile.replace("energy_per_synop_pj = 23.6", "energy_per_synop_pj = nan"))
    pcase("time_steps 10000", profile.replace("time_steps = 16", "time_steps = 10000"))
    pcase("time_steps 0", profile.replace("time_steps = 16", "time_steps = 0"))
    pcase("time_steps '16'", profile.replace("time_steps = 16", 'time_steps = "16"'))
    pcase("bits true", profile.replace("bits = 8", "bits = true", 1))
    pcase("unknown key", profile + "\n[weights2]\nx = 1\n")
    pcase("missing section", profile.split("[update]")[0])
    pcase("duplicate key", profile + "\nname = 'x'\n")
    pcase("not UTF-8", b"name = '\xff\xfe'\n")
    pcase("binary junk", bytes(range(256)) * 4)
    pcase("empty", "")
    pcase("2 MB", profile + "\n# " + "x" * (2 << 20) + "\n")
    pcase("is a FIFO", lambda p: os.mkfifo(p), ci=True)
    pcase("is a folder", lambda p: p.mkdir())
    pcase("is /dev/zero", lambda p: os.symlink("/dev/zero", p))
    pcase("NUL escape in name", profile.replace('name = "loihi2"', 'name = "a\\u0000b"'), "either")
    b.add("toml", "profile: unknown name", lambda d: ["profiles", "show", "nochip"], needle="nochip", out=None)

    def fl(d: Path) -> list[str]:
        return ["fl", "--config", str(d / "c.toml"), "--out", str(d / "out"), "--json"]

    def ccase(name: str, text: str | Callable[[Path], None], expect: str = "refuse", ci: bool = False,
              needle: str = "c.toml") -> None:  # fmt: skip
        d = b.add("toml", f"fl config: {name}", fl, expect, needle=needle if expect == "refuse" else None, ci=ci)
        if callable(text):
            text(d / "c.toml")
        else:
            (d / "c.toml").write_text(text)

    base = "clients = 3\nrounds = 1\n"
    ccase("valid", base + "batch = 4\n", "ok", ci=True)
    for key, value in (("clients", "-3"), ("clients", "0"), ("clients", "9" * 400), ("rounds", "nan"),
                       ("rounds", "1.5"), ("lr", "1e400"), ("lr", "9" * 400), ("lr", "-1"), ("seed", "-1"),
                       ("seed", str(2**40)), ("seed", '"3"'), ("seed", "[3]"), ("local_steps", str(10**9)),
                       ("fraction", "0"), ("dp_delta", "0.9"), ("capture_rounds", "[0]"), ("capture_rounds", '"1"'),
                       ("capture_clients", "-1"), ("strategy", '"fedx"'), ("vectorize", "1"),
                       ("alpha", "inf"), ("batch", str(10**7))):  # fmt: skip
        table = {"clients": "3", "rounds": "1", key: value}
        text = "".join(f"{k} = {v}\n" for k, v in table.items())
        ccase(f"{key} = {value[:20]}", text, ci=(key, value) in (("seed", "-1"), ("lr", "9" * 400)))
    ccase("unknown key", base + "nodes = 3\n")
    ccase("nested 10,000 deep", base + "x = " + "[" * 10000 + "]" * 10000 + "\n")
    ccase("is a FIFO", lambda p: os.mkfifo(p))
    ccase("missing", lambda p: None)


def _cli_cases(b: Builder) -> None:
    def add(name: str, argv: Callable[[Path], list[str]], needle: str | None, expect: str = "refuse",
            out: str | None = "out", ci: bool = False, prep: Callable[[Path], None] | None = None) -> None:  # fmt: skip
        d = b.add("cli", name, argv, expect, needle=needle, out=out, ci=ci)
        if prep is not None:
            prep(d)

    def train(*extra: str, out: str = "{d}/out/m.pt") -> Callable[[Path], list[str]]:
        return lambda d: ["train", "--epochs", "1", *[e.format(d=d) for e in extra], "--out", out.format(d=d)]

    for seed in ("-1", str(2**32), "abc", "1e3", "1.5", "9" * 400):
        add(f"train --seed {seed[:12]}", train("--seed", seed), "--seed", ci=seed in ("-1", str(2**32)))
    add("train --seed ' 3' (click reads 3)", train("--seed", " 3"), None, "ok")
    for epochs in ("0", "-1", str(10**9), "x"):
        add(f"train --epochs {epochs}", lambda d, e=epochs: ["train", "--epochs", e, "--out", str(d / "out" / "m.pt")],
            "--epochs")  # fmt: skip
    add("train --out is a folder", train(out="{d}/out"), "--out", prep=lambda d: (d / "out").mkdir(), ci=True)
    add("train --out under /proc", train(out="/proc/self/m.pt"), "/proc", out=None, ci=True)
    add("train --out under /sys", train(out="/sys/m.pt"), "/sys", out=None)
    add("train --out in a file's place", train(out="{d}/f/m.pt"), "--out", out="f",
        prep=lambda d: (d / "f").write_text("x"))  # fmt: skip
    add("train --out is a FIFO", train(out="{d}/fifo.pt"), "--out", out=None, prep=lambda d: os.mkfifo(d / "fifo.pt"))
    add("train --out .resume is a folder", train(out="{d}/out/m.pt"), "--out",
        prep=lambda d: (d / "out" / "m.pt.resume").mkdir(parents=True))  # fmt: skip
    add("train --out empty name", lambda d: ["train", "--epochs", "1", "--out", str(d) + "/"], "--out", out=None)
    add("train --out /", lambda d: ["train", "--epochs", "1", "--out", "/"], "--out", out=None)
    add("train --profile missing", train("--profile", "{d}/nope.toml"), "nope.toml")
    add("train --profile /dev/zero", train("--profile", "/dev/zero"), "/dev/zero")
    add("train --dataset nope", train("--dataset", "nope"), "nope")
    add("train --dataset mnist without data", train("--dataset", "mnist"), "mnist")
    add("train --data-dir is a file", train("--dataset", "mnist", "--data-dir", "{d}/f"), "f", out="out",
        prep=lambda d: (d / "f").write_text("x"))  # fmt: skip
    add("train --arch mlp on events", train("--dataset", "dvs-digits", "--arch", "mlp"), "--arch mlp")
    add("train --model cnn", train("--model", "cnn"), "--model")
    add("train --resume of another run", train("--seed", "1"), "resume",
        prep=lambda d: (d / "out").mkdir() or shutil.copyfile(b.shared / "real.pt",
                                                              d / "out" / "m.pt.resume"))  # fmt: skip
    add("export --out is a folder", lambda d: ["export", str(b.shared / "real.pt"), "--out", str(d / "out")], "--out",
        prep=lambda d: (d / "out").mkdir())  # fmt: skip
    add("export --out under /proc", lambda d: ["export", str(b.shared / "real.pt"), "--out", "/proc/m.net"], "/proc",
        out=None)  # fmt: skip
    add("export --profile loihi1", lambda d: ["export", str(b.shared / "real.pt"), "--profile", "loihi1", "--out",
        str(d / "out" / "m.net")], "loihi1")  # fmt: skip
    add("export missing checkpoint", lambda d: ["export", str(d / "nope.pt"), "--out", str(d / "out" / "m.net")],
        "nope.pt")  # fmt: skip
    for samples in ("0", "-5", str(10**9), "x"):
        add(f"verify --samples {samples}", lambda d, s=samples: ["verify", str(SHIPPED_NET), "--samples", s],
            "--samples", out=None)  # fmt: skip
    for seed in ("-1", str(2**32), "x"):
        add(f"verify --seed {seed}", lambda d, s=seed: ["verify", str(SHIPPED_NET), "--seed", s], "--seed", out=None)
    add("verify --dataset faces", lambda d: ["verify", str(SHIPPED_NET), "--dataset", "faces"], "faces", out=None)
    add("verify --profile nochip", lambda d: ["verify", str(SHIPPED_NET), "--profile", "nochip"], "nochip", out=None)

    def fl(*extra: str) -> Callable[[Path], list[str]]:
        return lambda d: ["fl", "--clients", "3", "--rounds", "1", *extra, "--out", str(d / "out")]

    for opt, value, needle in (("--clients", "0", "clients"), ("--clients", "-1", "clients"),
                               ("--clients", str(10**9), "clients"), ("--clients", "5000", "more clients"),
                               ("--rounds", "0", "rounds"), ("--fraction", "2", "fraction"),
                               ("--fraction", "nan", "fraction"), ("--lr", "nan", "lr"), ("--lr", "inf", "lr"),
                               ("--lr", "-1", "lr"), ("--seed", "-1", "--seed"), ("--seed", str(2**32), "--seed"),
                               ("--seed", "x", "--seed"), ("--cpus", "0", "--cpus"), ("--cpus", str(10**6), "--cpus"),
                               ("--nodes", "2", "--nodes"), ("--ray-address", "auto", "--ray-address"),
                               ("--capture-rounds", "1,,x", "--capture-rounds"),
                               ("--capture-rounds", "0", "capture_rounds"),
                               ("--capture-rounds", "999", "capture_rounds"), ("--dp-noise", "-1", "dp_noise"),
                               ("--batch", "0", "batch"), ("--local-steps", str(10**9), "local_steps"),
                               ("--alpha", "0", "alpha"),
                               ("--dataset", "nope", "nope"), ("--profile", "/dev/null", "/dev/null")):  # fmt: skip
        add(f"fl {opt} {value[:12]}", fl(opt, value), needle, ci=(opt, value) in (("--seed", "-1"), ("--clients", "0")))
    add("fl --defense secagg with 2 clients", lambda d: ["fl", "--clients", "2", "--rounds", "1", "--defense", "secagg",
        "--out", str(d / "out")], "secagg")  # fmt: skip
    add("fl --backend flower --nodes 0", fl("--backend", "flower", "--nodes", "0"), "--nodes")
    add("fl --backend flower --nodes 9", fl("--backend", "flower", "--nodes", "9"), "--nodes")
    add("fl --out is a file", lambda d: ["fl", "--clients", "3", "--rounds", "1", "--out", str(d / "f")], "--out",
        out="f", prep=lambda d: (d / "f").write_text("x"))  # fmt: skip
    add("fl --out under /proc", lambda d: ["fl", "--clients", "3", "--rounds", "1", "--out", "/proc/run"], "/proc",
        out=None, ci=True)  # fmt: skip
    add("fl --out under /dev", lambda d: ["fl", "--clients", "3", "--rounds", "1", "--out", "/dev/shm/../run"], "--out",
        out=None, expect="refuse")  # fmt: skip
    add("fl --out a FIFO", lambda d: ["fl", "--clients", "3", "--rounds", "1", "--out", str(d / "fifo")], "--out",
        out=None, prep=lambda d: os.mkfifo(d / "fifo"))  # fmt: skip
    add("fl --capture-rounds without --out", lambda d: ["fl", "--clients", "3", "--rounds", "1", "--capture-rounds",
        "1", "--capture-clients", "1"], "--out", out=None)  # fmt: skip
    add("fl --out holding another run", fl("--seed", "4"), "holds a run",
        prep=lambda d: shutil.copytree(b.shared / "fl", d / "out"))  # fmt: skip
    add("fl --out holding more rounds", lambda d: ["fl", "--clients", "6", "--rounds", "1", "--batch", "2",
        "--out", str(d / "out")], "holds", prep=lambda d: _more_rounds(b.shared / "fl", d / "out"))  # fmt: skip
    add("fl --out with a corrupt checkpoint", lambda d: ["fl", "--clients", "6", "--rounds", "1", "--batch", "2",
        "--capture-rounds", "1", "--capture-clients", "2", "--out", str(d / "out")], "checkpoint.pt",
        prep=lambda d: (shutil.copytree(b.shared / "fl", d / "out"),
                        (d / "out" / "checkpoint.pt").write_bytes(b"x")))  # fmt: skip
    add("profiles show unknown", lambda d: ["profiles", "show", "nochip"], "nochip", out=None)
    add("profiles show extra argument", lambda d: ["profiles", "list", "x"], None, out=None)
    add("datasets list --data-dir a file", lambda d: ["datasets", "list", "--data-dir", str(d / "f")], "--data-dir",
        out=None, prep=lambda d: (d / "f").write_text("x"))  # fmt: skip
    add("datasets list --data-dir /proc", lambda d: ["datasets", "list", "--data-dir", "/proc"], None, "ok", out=None)
    add("unknown command", lambda d: ["nope"], "nope", out=None)
    add("no command", lambda d: [], None, "ok", out=None)
    add("unknown option", lambda d: ["train", "--frobnicate"], "--frobnicate", out=None)


def _more_rounds(src: Path, dst: Path) -> None:
    """A copy of the shared 1-round run, extended to 2 rounds by the engine itself."""
    from neurofl.data import load_dataset
    from neurofl.federated import fl_config
    from neurofl.federated.engine import run_local
    from neurofl.federated.task import make_task
    from neurofl.profiles import load_profile

    shutil.copytree(src, dst)
    cfg = fl_config({"clients": 6, "rounds": 2, "batch": 2, "capture_rounds": [1], "capture_clients": 2})
    run_local(make_task(load_dataset("digits"), "snn", load_profile("loihi2"), cfg), dst)
    (dst / "config.json").unlink(missing_ok=True)


def build(root: Path) -> list[Case]:
    """Write the workspace under ``root`` (emptied first) and return every case."""
    if root.exists():
        shutil.rmtree(root)
    b = Builder(root)
    b.shared.mkdir(parents=True)
    (root / "mpl").mkdir()
    real = _real_checkpoint(b.shared)
    updates = _real_captures(b.shared)
    _checkpoint_cases(b, real)
    _netx_cases(b)
    _capture_cases(b, updates, b.shared / "fl-other" / "updates")
    _idx_cases(b)
    _cifar_cases(b)
    _event_cases(b)
    _toml_cases(b)
    _cli_cases(b)
    from neurofl_testing.redteam_more import add as add_issue30_cases

    add_issue30_cases(b)
    return b.cases
