"""Where tensors live: ``--device auto|cpu|cuda[:N]`` resolved once, and the helpers that keep
every tensor of a run on that device.

Random numbers are always drawn by CPU generators and then moved (:func:`draw`): a CUDA generator
draws other numbers than a CPU one with the same seed, so drawing on the CPU keeps "same seed, same
draw" on every device. Results on the CPU are unchanged by all of this (moving a CPU tensor to the
CPU is the tensor itself). Arithmetic on a GPU is not bit-identical to the CPU's, so a run records
the device it ran on (:func:`identity_entry`) and a resume on another device is refused.

>>> resolve_device("cpu")
device(type='cpu')
>>> resolve_device("auto") == (torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
True
>>> identity_entry(torch.device("cpu"))
{}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch

from neurofl.errors import UserError

CHOICES = ("auto", "cpu", "cuda")  # and cuda:N
_CUDA_N = re.compile(r"^cuda:(\d{1,3})$")


def resolve_device(spec: str | torch.device | None, flag: str = "--device") -> torch.device:
    """``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N`` as a device.

    Raises
    ------
    UserError
        An unknown name, or CUDA asked for where there is none (one line naming ``flag``).
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    m = _CUDA_N.match(text)
    if text != "cuda" and m is None:
        raise UserError(f"{flag} {spec}: expected auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise UserError(
            f"{flag} {spec}: no CUDA device is available (torch.cuda.is_available() is False); use {flag} cpu or auto"
        )
    if m is not None and int(m.group(1)) >= torch.cuda.device_count():
        raise UserError(f"{flag} {spec}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(text)


def device_kind(device: torch.device | str) -> str:
    """The kind a run records: ``cpu`` or ``cuda`` (the index is left out: one GPU model's
    arithmetic does not depend on which of a machine's GPUs runs it)."""
    return torch.device(device).type


def identity_entry(device: torch.device | str) -> dict[str, str]:
    """The run-identity entry of ``device``: nothing for the CPU (so runs recorded before
    ``--device`` existed still resume), ``{"device": "cuda"}`` otherwise."""
    kind = device_kind(device)
    return {} if kind == "cpu" else {"device": kind}


def device_of(model: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (the CPU for one with neither)."""
    for t in model.parameters():
        return t.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def draw(sample: Callable[..., torch.Tensor], *args: Any, device: torch.device | str, **kwargs: Any) -> torch.Tensor:
    """``sample(*args, **kwargs)`` (a torch sampler with a CPU ``generator=``) moved to ``device``:
    the same numbers on every device.

    >>> g = torch.Generator().manual_seed(0)
    >>> draw(torch.rand, (2,), generator=g, device="cpu").shape
    torch.Size([2])
    """
    return sample(*args, **kwargs).to(device)


def on_cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict or update with every tensor detached on the CPU (what is saved to disk)."""
    return {k: v.detach().cpu() for k, v in tensors.items()}


def describe(device: torch.device) -> dict[str, Any]:
    """What a report records about the device: its kind and, for CUDA, the GPU's name."""
    out: dict[str, Any] = {"device": device_kind(device)}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out
