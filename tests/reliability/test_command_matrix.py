"""Every command x every shipped profile x every model kind: each cell works (exit 0) or is refused
with exit 2 and one ``error: ...`` line naming why; no exit 1 (an internal error) anywhere.

Commands: train, import, export, verify, evaluate, attack, fl. Profiles: the nine shipped ones.
Model kinds: a fully connected model (``mlp``), a convolutional one (``conv``) and one imported from
a NIR graph (``nir``, snnTorch's export of a 64-16-10 network). Each cell is one or more real command
lines run in this process through :func:`neurofl.cli.run`, kept tiny (digits, 1 epoch, 1 victim,
2 attack iterations, 2 clients, 1 round, 2 verify samples), so the whole matrix runs in well under
a minute on one core.

What a cell runs (``P`` the profile, ``K`` the kind; the model of a cell is ``P``'s checkpoint of
kind ``K``: ``train --profile P --arch K`` for mlp/conv, ``import --profile P`` for nir):

- train: ``train --profile P --arch K``; for ``nir`` there is nothing to train from a seed
  (an imported model trains through ``fl --model``): the cell is :data:`NOT_APPLICABLE`;
- import: mlp: the NIR export of the cell's model (float32's where the profile's cannot be exported)
  imported under ``P``; conv: a convolutional NIR graph; nir: snnTorch's graph;
- export: ``export --format netx`` and ``export --format nir`` of the model;
- verify: the exported ``.net`` (Lava), else the checkpoint itself (xylosim for Xylo);
- evaluate / attack: on the checkpoint (``--model``) and on a model built from the seed; attack,
  for mlp, also on updates ``fl --capture-rounds`` captured under ``P`` (``--updates``);
- fl: from the checkpoint (``--model``) and, for mlp, from the seed.

A cell whose model could not be made (its ``train`` or ``import`` was refused) inherits that
refusal for the steps that need the model; the steps that need none still run.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path
from typing import Any

import pytest

from neurofl.cli import run

PROFILES = ("float32", "loihi1", "loihi2", "xylo-audio2", "xylo-imu", "speck", "akd1000", "spinnaker2", "truenorth")
KINDS = ("mlp", "conv", "nir")
COMMANDS = ("train", "import", "export", "verify", "evaluate", "attack", "fl")
NOT_APPLICABLE = {("train", "nir"): "train builds its model from a seed; an imported model is trained by fl --model"}
TINY_ATTACK = ["--victims", "1", "--iterations", "2", "--seed", "0"]


class Step:
    """One command line of a cell and what it gave."""

    def __init__(self, argv: list[str], code: int, stderr: str, seconds: float):
        self.argv, self.code, self.seconds = argv, code, seconds
        self.lines = [ln for ln in stderr.splitlines() if ln.strip()]

    def problem(self) -> str | None:
        """What breaks the contract (None: exit 0, or exit 2 with one ``error:`` line)."""
        where = "neurofl " + " ".join(self.argv)
        if self.code == 0:
            return None
        if self.code != 2:
            return f"{where}: exit {self.code}: {self.lines[-1:] or ''}"
        errors = [ln for ln in self.lines if ln.startswith("error: ")]
        if len(self.lines) != 1 or len(errors) != 1:
            return f"{where}: refused with {len(self.lines)} stderr lines, not one error line: {self.lines[:4]}"
        return None


class Matrix:
    """Runs the cells' command lines in ``root``, making each model once (cached)."""

    def __init__(self, root: Path):
        self.root = root
        self.models: dict[tuple[str, str], Path | str] = {}  # (profile, kind) -> checkpoint, or the refusal line
        self.nir: dict[str, Path] = {}
        self.log: list[Step] = []
        self.cells: dict[tuple[str, str, str], tuple[list[Step], str | None]] = {}

    def run(self, argv: list[str]) -> Step:
        out, err = io.StringIO(), io.StringIO()
        t0 = time.monotonic()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run(argv)
        step = Step(argv, code, err.getvalue(), time.monotonic() - t0)
        self.log.append(step)
        return step

    def folder(self, *parts: str) -> Path:
        d = self.root.joinpath(*parts)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def graph(self, name: str) -> Path:
        """``snntorch``: snnTorch's NIR export of a 64-16-10 network; ``conv``: a convolutional graph."""
        if name not in self.nir:
            path = self.folder("graphs") / f"{name}.nir"
            if name == "snntorch":
                from neurofl_testing.nir_nets import write_float_snntorch_nir

                write_float_snntorch_nir(path)
            else:
                _write_conv_nir(path)
            self.nir[name] = path
        return self.nir[name]

    def model(self, profile: str, kind: str) -> tuple[Path | None, Step | None]:
        """The cell's checkpoint (None if its making was refused) and the step that made it."""
        key = (profile, kind)
        if key in self.models:
            got = self.models[key]
            return (got, None) if isinstance(got, Path) else (None, None)
        path = self.folder(profile, kind) / "m.pt"
        if kind == "nir":
            argv = ["import", str(self.graph("snntorch")), "--profile", profile, "--dt", "1e-4", "--dataset", "digits"]
        else:
            argv = ["train", "--dataset", "digits", "--profile", profile, "--arch", kind, "--epochs", "1"]
        step = self.run([*argv, "--out", str(path)])
        self.models[key] = path if step.code == 0 and path.exists() else (step.lines[-1] if step.lines else "refused")
        return (path if step.code == 0 and path.exists() else None), step

    def cell(self, command: str, profile: str, kind: str) -> tuple[list[Step], str | None]:
        """The cell's steps and, where the model it needs was refused, that refusal (run once)."""
        key = (command, profile, kind)
        if key not in self.cells:
            self.cells[key] = self._cell(command, profile, kind)
        return self.cells[key]

    def _cell(self, command: str, profile: str, kind: str) -> tuple[list[Step], str | None]:
        steps: list[Step] = []
        model, made = self.model(profile, kind)
        if made is not None and command in ("train", "import"):
            steps.append(made)
        upstream = None if model is not None else str(self.models[(profile, kind)])
        d = self.folder(profile, kind, command)
        if command == "train":
            if made is None:  # made by an earlier cell: train again into another file (a cheap re-run)
                steps.append(self.run(["train", "--dataset", "digits", "--profile", profile, "--arch", kind,
                                       "--epochs", "1", "--seed", "0", "--out", str(d / "again.pt")]))  # fmt: skip
        elif command == "import":
            if kind == "mlp":
                graph = self._nir_export(profile) or self._nir_export("float32")
                assert graph is not None, "the float32 MLP must export to NIR"
                steps.append(self.run(["import", str(graph), "--profile", profile, "--dt", "1e-4", "--dataset",
                                       "digits", "--out", str(d / "imported.pt")]))  # fmt: skip
            elif kind == "conv":
                steps.append(self.run(["import", str(self.graph("conv")), "--profile", profile, "--dt", "1e-4",
                                       "--dataset", "digits", "--out", str(d / "imported.pt")]))  # fmt: skip
            elif made is None:
                steps.append(self.run(["import", str(self.graph("snntorch")), "--profile", profile, "--dt", "1e-4",
                                       "--dataset", "none", "--out", str(d / "imported.pt")]))  # fmt: skip
        elif model is not None and command == "export":
            steps.append(self.run(["export", str(model), "--out", str(d / "m.net")]))
            steps.append(self.run(["export", str(model), "--format", "nir", "--out", str(d / "m.nir")]))
        elif model is not None and command == "verify":
            net = self.folder(profile, kind, "export") / "m.net"
            if not net.exists():
                self.run(["export", str(model), "--out", str(net)])
            target = net if net.exists() else model
            steps.append(self.run(["verify", str(target), "--samples", "2", "--seed", "0"]))
        elif command == "evaluate":
            common = [*TINY_ATTACK, "--attack", "idlg", "--train-epochs", "0", "--workers", "1"]
            if model is not None:
                steps.append(self.run(["evaluate", "--model", str(model), *common, "--out", str(d / "file")]))
            if kind != "nir":
                steps.append(self.run(["evaluate", "--profile", profile, "--arch", kind, *common, "--out",
                                       str(d / "built")]))  # fmt: skip
        elif command == "attack":
            common = [*TINY_ATTACK, "--recipe", "idlg"]
            if model is not None:
                steps.append(self.run(["attack", "--model", str(model), *common]))
            if kind != "nir":
                steps.append(self.run(["attack", "--model", "snn", "--profile", profile, "--arch", kind, *common]))
            if kind == "mlp":  # updates captured by fl under the profile, attacked as captured
                fl = ["fl", "--profile", profile, "--clients", "2", "--rounds", "1", "--batch", "4", "--capture-rounds",
                      "1", "--capture-clients", "1", "--out", str(d / "fl")]  # fmt: skip
                steps.append(self.run(fl))
                if steps[-1].code == 0:
                    steps.append(self.run(["attack", "--updates", str(d / "fl" / "updates"), "--iterations", "2",
                                           "--recipe", "idlg"]))  # fmt: skip
        elif command == "fl":
            common = ["--clients", "2", "--rounds", "1", "--batch", "4", "--seed", "0"]
            if model is not None:
                steps.append(self.run(["fl", "--model", str(model), *common]))
            if kind == "mlp":
                steps.append(self.run(["fl", "--profile", profile, *common]))
        return steps, upstream

    def _nir_export(self, profile: str) -> Path | None:
        model, _ = self.model(profile, "mlp")
        if model is None:
            return None
        path = self.folder(profile, "mlp") / "m.nir"
        if not path.exists():
            self.run(["export", str(model), "--format", "nir", "--out", str(path)])
        return path if path.exists() else None


def _write_conv_nir(path: Path) -> None:
    """A small convolutional NIR graph (1x8x8 -> conv 4x3x3 -> CubaLIF -> flatten -> 10 -> CubaLIF)."""
    import nir
    import numpy as np

    rng = np.random.default_rng(0)

    def cuba(n: tuple[int, ...]) -> Any:
        ones = np.ones(n, dtype=np.float32)
        return nir.CubaLIF(tau_syn=ones * 2e-3, tau_mem=ones * 4e-3, r=ones, v_leak=0 * ones, v_threshold=ones,
                           w_in=ones)  # fmt: skip

    nodes = {
        "input": nir.Input(input_type=np.array([1, 8, 8])),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32),
                           stride=1, padding=0, dilation=1, groups=1, bias=np.zeros(4, np.float32)),  # fmt: skip
        "lif1": cuba((4, 6, 6)),
        "flat": nir.Flatten(input_type={"input": np.array([4, 6, 6])}, start_dim=0, end_dim=-1),
        "fc": nir.Linear(weight=rng.normal(0, 0.1, (10, 144)).astype(np.float32)),
        "lif2": cuba((10,)),
        "output": nir.Output(output_type=np.array([10])),
    }
    order = list(nodes)
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:], strict=True))))


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    return Matrix(tmp_path_factory.mktemp("matrix"))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("command", COMMANDS)
def test_cell_works_or_refuses_in_one_line(matrix: Matrix, command: str, profile: str, kind: str) -> None:
    if (command, kind) in NOT_APPLICABLE:
        pytest.skip(NOT_APPLICABLE[(command, kind)])
    steps, upstream = matrix.cell(command, profile, kind)
    assert steps or upstream, f"{command} x {profile} x {kind}: the cell ran nothing"
    problems = [p for p in (s.problem() for s in steps) if p is not None]
    assert not problems, "\n".join(problems)


def test_the_matrix_covers_every_shipped_profile() -> None:
    from neurofl.profiles import shipped_profiles

    assert set(PROFILES) == set(shipped_profiles())


def test_valid_cells_work(matrix: Matrix) -> None:
    """What must not be refused: updates captured under every profile (chip networks included) by
    ``attack --updates``, the Loihi models through every command, and an 8-class Xylo Audio 2
    checkpoint (digits' first 8 classes) through evaluate, attack, fl and verify."""
    for profile in PROFILES:  # updates captured under every profile are attacked as captured
        steps, _ = matrix.cell("attack", profile, "mlp")
        assert any(s.argv[:2] == ["attack", "--updates"] and s.code == 0 for s in steps), profile
    for profile in ("loihi1", "loihi2"):
        for kind in ("mlp", "nir"):
            for command in ("export", "verify", "evaluate", "attack", "fl"):
                steps, upstream = matrix.cell(command, profile, kind)
                why = (command, profile, kind, [s.lines[-1:] for s in steps])
                assert upstream is None and all(s.code == 0 for s in steps), why
    model, _ = matrix.model("xylo-audio2", "mlp")
    assert model is not None
    for command in ("evaluate", "attack", "fl", "verify"):
        steps, _ = matrix.cell(command, "xylo-audio2", "mlp")
        assert all(s.code == 0 for s in steps), (command, [s.lines[-1:] for s in steps])
