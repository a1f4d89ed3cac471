"""Ablations of the spiking ingredients: one override of an SNN row's profile or neuron, as data.

``neurofl study --ablate KEY=V1,V2,...`` adds, beside each chip profile's SNN row, one row per value:
the same SNN with that one key changed and everything else fixed, labelled by content
(``snn@loihi2[time_steps=4]``). An override is a frozen :class:`Ablation` (key and canonical value);
:func:`parse_ablate` turns the option's text into them (an unknown key, a bad value or an axis the
models cannot express is refused with one line naming it), and :meth:`Ablation.apply` gives the row's
profile and architecture.

The axes (``AXES``), where each takes effect:

========================  ===================================================================
``time_steps=T``          ``simulation.time_steps`` (1..MAX_TIME_STEPS); not on event inputs
                          (their frames bring their own T)
``encoding=E``            ``spikes.input_encoding`` of static images: ``direct`` (graded current,
                          needs graded spikes), ``rate`` (Bernoulli), ``regular`` (deterministic
                          rate: ``floor(p T)`` evenly spaced spikes); ``events``: the dataset's own
                          events, which is the unablated row of an event dataset (so no extra row)
``surrogate_width=F``     the spike's surrogate gradient ``F`` times as wide, same area (SLAYER's
                          ``tau_grad`` times ``F``): shapes the victims' updates and training
``surrogate_shape=S``     ``neuron.surrogate``: the surrogate gradient's shape, same width and
                          area (``laplace``, SLAYER's; ``fast_sigmoid``, ``triangle``,
                          ``gaussian``: :func:`neurofl.models.cuba.surrogate_derivative`)
``leak=on|off``           ``off``: no membrane leak (``voltage_decay = 0``; the synaptic current's
                          decay kept)
``reset=zero|subtract``   ``neuron.reset``: at a spike the voltage is set to zero (SLAYER, Lava)
                          or drops by the threshold
``payload=binary|graded`` ``neuron.payload``: hidden spikes carry 1 or, graded (SLAYER's graded
                          spike), the voltage at the crossing; only where the profile's spikes
                          carry a graded payload (loihi2, float32; not loihi1)
``upload=U``              ``update``: ``float32``, or ``intN`` (N in 2..16, nearest rounding, one
                          scale per tensor)
========================  ===================================================================

Rows with a subtractive reset or graded hidden spikes are study rows only: Lava's CUBA neuron resets
to zero and the exports carry binary hidden spikes, so ``export`` refuses such a model
(:meth:`~neurofl.models.arch.NeuronParams.lava_incompatibility`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from neurofl.errors import UserError
from neurofl.io.limits import MAX_TIME_STEPS
from neurofl.models.arch import PAYLOADS, RESETS, SURROGATES
from neurofl.profiles import FLOAT_BITS, HardwareProfile, UpdateFormat

MAX_UPLOAD_BITS = 16
MAX_SURROGATE_WIDTH = 1000.0
ENCODINGS = ("direct", "rate", "regular", "events")


class NotApplicable(Exception):
    """The override does not apply to this cell's data (e.g. ``time_steps`` on event inputs): the row
    is listed as not applicable, with this reason."""


def _time_steps(v: str) -> str:
    if not re.fullmatch(r"[0-9]+", v) or not 1 <= int(v) <= MAX_TIME_STEPS:
        raise ValueError(f"expected an integer in 1..{MAX_TIME_STEPS}")
    return str(int(v))


def _width(v: str) -> str:
    try:
        f = float(v)
    except ValueError:
        raise ValueError("expected a positive number (a factor on the surrogate's width)") from None
    if not 0 < f <= MAX_SURROGATE_WIDTH:
        raise ValueError(f"expected a factor in (0, {MAX_SURROGATE_WIDTH:g}]")
    return f"{f:g}"


def _choice(*allowed: str) -> Callable[[str], str]:
    """A value check accepting exactly ``allowed``."""

    def check(v: str) -> str:
        if v not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return v

    return check


def _upload(v: str) -> str:
    if v == "float32":
        return v
    m = re.fullmatch(r"int([0-9]+)", v)
    if not m or not 2 <= int(m.group(1)) <= MAX_UPLOAD_BITS:
        raise ValueError(f"expected float32 or intN with N in 2..{MAX_UPLOAD_BITS}")
    return f"int{int(m.group(1))}"


# key -> (what the axis is, the value's check returning its canonical text)
AXES: dict[str, tuple[str, Callable[[str], str]]] = {
    "time_steps": ("time steps T per sample", _time_steps),
    "encoding": ("input encoding", _choice(*ENCODINGS)),
    "surrogate_width": ("surrogate gradient width (factor)", _width),
    "surrogate_shape": ("surrogate gradient shape", _choice(*SURROGATES)),
    "leak": ("membrane leak", _choice("on", "off")),
    "reset": ("reset at a spike", _choice(*RESETS)),
    "payload": ("hidden spike payload", _choice(*PAYLOADS)),
    "upload": ("upload quantization", _upload),
}
# the axes that set one key of the SLAYER neuron (models/arch.NeuronParams)
NEURON_KEYS = {"surrogate_shape": "surrogate", "reset": "reset", "payload": "payload"}


@dataclass(frozen=True)
class Ablation:
    """One override of an SNN row: ``key`` (one of :data:`AXES`) and its canonical ``value``."""

    key: str
    value: str

    def __post_init__(self) -> None:
        if self.key not in AXES:
            raise ValueError(f"unknown ablation key {self.key!r}")
        if AXES[self.key][1](self.value) != self.value:
            raise ValueError(f"ablation value {self.value!r} of {self.key!r} is not canonical")

    @property
    def label(self) -> str:
        """``key=value``, as row labels show it (``snn@loihi2[time_steps=4]``)."""
        return f"{self.key}={self.value}"

    def base_value(self, profile: HardwareProfile, arch: Any) -> str:
        """This axis's value in the unablated row of ``profile`` and ``arch``."""
        events = len(getattr(arch, "input_shape", ())) == 4
        if self.key == "time_steps":
            return str(arch.input_shape[3]) if events else str(profile.simulation.time_steps)
        if self.key == "encoding":
            return "events" if events else profile.spikes.input_encoding
        if self.key == "surrogate_width":
            return "1"
        if self.key == "leak":
            return "on" if arch.neuron.voltage_decay > 0 else "off"
        if self.key in NEURON_KEYS:
            return str(getattr(arch.neuron, NEURON_KEYS[self.key]))
        u = profile.update
        return "float32" if u.format == "float" else f"int{u.bits}"

    def apply(self, profile: HardwareProfile, arch: Any) -> tuple[HardwareProfile, Any]:
        """The row's profile and architecture with this one key changed.

        Raises
        ------
        NotApplicable
            The key does not apply to this data or chip (event inputs and ``time_steps`` or any
            encoding: the unablated row is the events' own; ``encoding=events`` on static images;
            ``payload=graded`` on a chip whose spikes carry no payload).
        UserError
            The profile cannot take the value (e.g. a direct input on a binary-spike chip), or the
            profile's SNN is not a SLAYER network (neuron keys).
        """
        events = len(getattr(arch, "input_shape", ())) == 4
        replace = dataclasses.replace
        try:
            if self.key == "time_steps":
                if events:
                    raise NotApplicable("event inputs bring their own time steps")
                sim = replace(profile.simulation, time_steps=int(self.value))
                return replace(profile, simulation=sim), arch
            if self.key == "encoding":
                if events:
                    own = ": the unablated row's" if self.value == "events" else ""
                    raise NotApplicable(f"event inputs are their own encoding{own}")
                if self.value == "events":
                    raise NotApplicable("the dataset has no events")
                self._need_slayer(profile)
                return replace(profile, spikes=replace(profile.spikes, input_encoding=self.value)), arch
            if self.key == "upload":
                src = f"ablation upload={self.value}"
                fmt = (UpdateFormat("float", FLOAT_BITS, "nearest", src) if self.value == "float32"
                       else UpdateFormat("int", int(self.value[3:]), "nearest", src))  # fmt: skip
                return replace(profile, update=fmt), arch
            self._need_slayer(profile)
            n = arch.neuron
            if self.key == "surrogate_width":
                n = replace(n, tau_grad=n.tau_grad * float(self.value))
            elif self.key == "leak":
                n = replace(n, voltage_decay=0.0 if self.value == "off" else n.voltage_decay)
            else:
                if self.key == "payload" and self.value == "graded" and profile.spikes.payload != "graded":
                    raise NotApplicable(f"profile '{profile.name}' spikes carry no payload "
                                        f"(spikes.payload = {profile.spikes.payload!r})")  # fmt: skip
                n = replace(n, **{NEURON_KEYS[self.key]: self.value})
            return profile, replace(arch, neuron=n)
        except ValueError as e:  # the profile's own validation: one line naming the key
            raise UserError(f"--ablate {self.label} on profile '{profile.name}': {e}") from None

    def _need_slayer(self, profile: HardwareProfile) -> None:
        if profile.neuron.decay != "multiplier":
            raise UserError(f"--ablate {self.label}: profile '{profile.name}' builds a chip network, not a SLAYER "
                            "CUBA network; this axis is modelled for SLAYER profiles only")  # fmt: skip


def parse_ablate(specs: Sequence[str]) -> tuple[Ablation, ...]:
    """``KEY=V1,V2,...`` texts (the repeatable ``--ablate``) as ablations, axis by axis in the order
    given, each value once. Refuses an unknown key, a missing ``=``, an empty or bad value
    with one line naming it.

    >>> [a.label for a in parse_ablate(["time_steps=4,1", "upload=int4"])]
    ['time_steps=4', 'time_steps=1', 'upload=int4']
    """
    out: list[Ablation] = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if key not in AXES:
            known = ", ".join(AXES)
            raise UserError(f"--ablate {spec!r}: unknown key {key!r} (known: {known})")
        texts = [v.strip() for v in values.split(",")]
        if not sep or not any(texts):
            raise UserError(f"--ablate {spec!r}: expected {key}=V1,V2,...")
        for text in texts:
            try:
                value = AXES[key][1](text)
            except ValueError as e:
                raise UserError(f"--ablate {key}={text!r}: {e}") from None
            a = Ablation(key, value)
            if a not in out:
                out.append(a)
    return tuple(out)


def axes_of(ablations: Sequence[Ablation]) -> dict[str, list[str]]:
    """The ablated keys in order, each with its values."""
    axes: dict[str, list[str]] = {}
    for a in ablations:
        axes.setdefault(a.key, []).append(a.value)
    return axes
