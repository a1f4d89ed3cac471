"""``--model MODEL.pt``: a neurofl checkpoint (trained, or imported from NIR) as the model that
``evaluate``, ``attack`` and ``fl`` run on, instead of one they build from a seed.

The one place that turns a checkpoint into what a command needs: the model's kind, architecture
and weights, the dataset it takes and the profile it runs under, and the file's content digest
that goes into the run's identity (a different file never resumes an old run folder).

Rules (the same for every command):

- the file is read by :func:`neurofl.models.checkpoint.load_checkpoint` (regular file, bounded sizes,
  tensors only, a header that validates); anything else is one :class:`UserError` line;
- the dataset defaults to the one the header names; another ``--dataset`` is refused, except for a
  model imported with ``--dataset none``, whose input width and class count must fit the dataset;
- an SNN's weights lie on its profile's grid, so its profile is the run's; a ``--profile`` whose
  content differs is refused. An ANN is float under every profile: ``--profile`` is free and
  defaults to the header's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurofl.errors import UserError
from neurofl.models import ModelKind, build_model
from neurofl.profiles import HardwareProfile, load_profile

KINDS = ("snn", "ann")
# Header datasets that name no dataset (``neurofl import --dataset none``; very old headers).
NO_DATASET = ("none", "?")


@dataclass(frozen=True)
class ModelFile:
    """A checkpoint resolved for one command.

    path : the file as given; sha256 : digest of its bytes
    kind, arch : what the header says the model is
    profile : the profile the command runs the model under (see the module's rules)
    saved_profile : the profile the header records
    dataset : the dataset the command uses (the header's, or the one asked for)
    state_dict : the weights; accuracy : the header's test accuracy (None if it records none)
    """

    path: Path
    sha256: str
    kind: ModelKind
    arch: Any
    profile: HardwareProfile
    saved_profile: HardwareProfile
    dataset: str
    state_dict: dict[str, torch.Tensor]
    accuracy: float | None
    header: dict[str, Any]

    def identity(self) -> dict[str, Any]:
        """What identifies the model in a run's ``config.json``: its content, never its path."""
        return {"sha256": self.sha256, "kind": self.kind, "profile": self.profile.name, "dataset": self.dataset}

    def build(self, profile: HardwareProfile | None = None) -> torch.nn.Module:
        """A fresh model holding the file's weights (in training mode, like a built one), under
        ``profile`` (default :attr:`profile`; another input encoding of the same profile is fine)."""
        model = build_model(self.kind, self.arch, profile or self.profile, seed=0)
        model.load_state_dict(self.state_dict)
        return model

    def chip_classes(self, ds: Any) -> int | None:
        """The classes a chip network was trained on when its chip has fewer output neurons than
        ``ds`` has classes (``train`` keeps the first ``chip.output_neurons`` classes:
        :func:`neurofl.models.chips.xylo_net.chip_architecture`); None when the model takes every class."""
        chip = self.saved_profile.chip
        outputs = None if chip is None else chip.output_neurons
        if outputs is not None and self.arch.classes == outputs < int(ds.classes):
            return outputs
        return None

    def dataset_for(self, ds: Any) -> Any:
        """``ds`` as the model was trained on it: for a chip network of fewer output neurons than
        ``ds`` has classes (see :meth:`chip_classes`), its samples of the first classes only, with
        that class count (every split drawn from it is filtered alike, as ``train`` does)."""
        kept = self.chip_classes(ds)
        if kept is None:
            return ds
        return dataclasses.replace(ds.subset(np.flatnonzero(ds.y < kept)), classes=kept)

    def for_dataset(self, ds: Any) -> ModelFile:
        """This model for dataset ``ds``: a fully connected model takes the dataset's input shape
        (a model imported with a flat input of the same width is the same model).

        Raises
        ------
        UserError
            The dataset's input shape (conv) or width (fully connected), or its class count, is not the model's.
        """
        shape, classes = tuple(ds.input_shape), int(ds.classes)
        arch = self.arch
        if type(arch).__name__ == "ConvArchitecture":
            fits, takes = tuple(arch.input_shape) == shape, tuple(arch.input_shape)
        else:
            fits, takes = arch.input_size == math.prod(shape), arch.input_size
        kept = self.chip_classes(ds)
        if fits and kept is not None:
            raise UserError(
                f"{self.path}: a chip network of {kept} classes (chip.output_neurons = {kept} of profile "
                f"'{self.saved_profile.name}'), trained on classes 0..{kept - 1} of dataset '{ds.name}'; this "
                f"command runs on all {classes} classes (`neurofl fl --model` takes it)"
            )
        if not fits or arch.classes != classes:
            raise UserError(
                f"{self.path}: the model takes inputs {takes} and has {arch.classes} classes; dataset '{ds.name}' "
                f"has inputs {shape} and {classes} classes"
            )
        if type(arch).__name__ == "ConvArchitecture" or tuple(arch.input_shape) == shape:
            return self
        return dataclasses.replace(self, arch=dataclasses.replace(arch, input_shape=shape))


def check_arch_option(mf: ModelFile, arch: str) -> None:
    """Refuse an ``--arch`` (``auto``, ``mlp``, ``conv``) that is not the checkpoint's topology."""
    has = "conv" if type(mf.arch).__name__ == "ConvArchitecture" else "mlp"
    if arch not in ("auto", has):
        raise UserError(f"--arch {arch}: {mf.path} holds a {has} model (omit --arch with --model)")


def split_model_option(value: str) -> tuple[ModelKind | None, Path | None]:
    """``--model`` of ``attack`` and ``fl``: ``snn`` or ``ann`` (build one) or a checkpoint path.

    Returns (kind, None) or (None, path). A file literally named ``snn`` is passed as ``./snn``.
    """
    if value in KINDS:
        return value, None  # type: ignore[return-value]
    if not value.strip():
        raise UserError("--model: expected snn, ann or a checkpoint file (.pt)")
    return None, Path(value)


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a checkpoint file's bytes (read within the checkpoint size limit)."""
    from neurofl.io.safeio import read_regular
    from neurofl.io.tensorfile import MAX_FILE_BYTES

    return hashlib.sha256(read_regular(path, MAX_FILE_BYTES, "checkpoint")).hexdigest()


def _resolve_dataset(path: Path, saved: str, requested: str | None) -> str:
    if saved in NO_DATASET:
        if requested is None:
            raise UserError(f"{path}: the checkpoint names no dataset (imported with --dataset none); pass --dataset")
        return requested
    if requested is not None and requested != saved:
        raise UserError(f"--dataset {requested}: {path} holds a model of dataset '{saved}' (omit --dataset)"[:300])
    return saved


def resolve_profile(mf: ModelFile, requested: str | None, flag: str = "--profile") -> HardwareProfile:
    """The profile a command runs ``mf`` under when the user asks for ``requested`` (None: not asked).

    Raises
    ------
    UserError
        An SNN checkpoint and a ``requested`` profile whose content is not the checkpoint's.
    """
    if requested is None:
        return mf.saved_profile
    profile = load_profile(requested)
    if mf.kind == "snn" and profile != mf.saved_profile:
        same = "a profile of the same name with other values" if profile.name == mf.saved_profile.name else None
        raise UserError(
            f"{flag} {requested}: {mf.path} holds an SNN for profile '{mf.saved_profile.name}' (its weights are on "
            f"that grid), not {same or repr(profile.name)}; omit {flag} or pass the checkpoint's profile"[:400]
        )
    return profile


def open_model_file(path: Path, dataset: str | None = None, profile: str | None = None) -> ModelFile:
    """Load the checkpoint at ``path`` for a command run on ``dataset`` under ``profile``
    (None: the checkpoint's own), applying the module's rules.

    Raises
    ------
    UserError
        A missing, hostile or malformed file, or a dataset or profile the model does not take
        (one line naming the file).
    """
    from neurofl.models.checkpoint import load_checkpoint

    path = Path(path)
    ckpt = load_checkpoint(path)
    digest = file_sha256(path)
    ds_name = _resolve_dataset(path, ckpt.dataset, dataset)
    state = {k: v.clone() for k, v in ckpt.model.state_dict().items()}
    mf = ModelFile(path, digest, ckpt.kind, ckpt.arch, ckpt.profile, ckpt.profile, ds_name, state, ckpt.accuracy,
                   ckpt.header)  # fmt: skip
    return dataclasses.replace(mf, profile=resolve_profile(mf, profile))


def fl_task(mf: ModelFile, ds: Any, cfg: Any) -> Any:
    """The federated task (:class:`neurofl.federated.task.FLTask`) that starts from ``mf``'s weights
    on dataset ``ds`` with settings ``cfg``; the run's identity holds the file's digest.

    Raises
    ------
    UserError
        A convolutional checkpoint (the federated engine trains fully connected models only), or a
        dataset the model does not take.
    """
    from neurofl.federated.task import make_task
    from neurofl.models import Architecture

    ds = mf.dataset_for(ds)  # a chip network trained on the first classes runs on those
    mf = mf.for_dataset(ds)
    if not isinstance(mf.arch, Architecture):
        raise UserError(f"{mf.path}: a convolutional model; the federated engine trains fully connected models only")
    return make_task(ds, mf.kind, mf.profile, cfg, arch=mf.arch, initial_state=mf.state_dict,
                     initial_identity=mf.identity())  # fmt: skip
