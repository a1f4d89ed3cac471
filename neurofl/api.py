"""neurofl's Python API: the two leakage runs as functions that return the report as a typed object.

:func:`evaluate` is ``neurofl evaluate`` (one federated round; the server attacks every victim's
update; ANN vs SNN rows under each profile) and :func:`attack` is ``neurofl attack`` (one recipe or
suite on fresh or captured updates). Both take the command's settings as keyword arguments (the
fields of :class:`neurofl.pipelines.evaluate.EvaluateConfig` and :class:`neurofl.pipelines.attack.AttackConfig`),
write the same run folder as the command and return its ``report.json`` as a :class:`Report`.

>>> import neurofl
>>> report = neurofl.evaluate(profiles="loihi2", attack="inverting_gradients", victims=4,
...                           iterations=20, train_epochs=0, out="runs/api")  # doctest: +SKIP
>>> for row in report.rows:  # doctest: +SKIP
...     print(row.label, row.iip, row.asr)

A report already on disk reads the same way: ``Report.from_json("runs/api/report.json")``.
Like the library underneath, the API leaves torch's thread count alone; the command line's policy
(``NEUROFL_THREADS``, else ``OMP_NUM_THREADS``, else 1) is :func:`neurofl.runs.threads.apply_thread_policy`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["AttackScore", "Report", "Row", "attack", "evaluate"]

Interval = tuple[float | None, float | None]
ProgressFn = Callable[..., None]


def _interval(value: Any) -> Interval:
    """A report's ``[lo, hi]`` (either may be null) as a pair; absent: ``(None, None)``."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return (None, None)
    lo, hi = value
    return (None if lo is None else float(lo), None if hi is None else float(hi))


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class AttackScore:
    """One attack's scores on a row (an entry of the row's ``per_attack``).

    Attributes
    ----------
    name : the recipe's name
    applicable : False where the attack cannot run on the row (``reason`` in ``raw`` says why;
        its scores are then None)
    iip, iip_ci95 : share of samples the reconstruction identifies (sample-level identification,
        pixel space) and its exact 95% interval
    asr, asr_ci95 : attack success rate by the label judge and its exact 95% interval
    raw : the entry as report.json holds it (PSNR, SSIM, failures, ``works_on_ann``, ...)
    """

    name: str
    applicable: bool
    iip: float | None
    iip_ci95: Interval
    asr: float | None
    asr_ci95: Interval
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> AttackScore:
        return cls(
            name=name,
            applicable=bool(data.get("applicable", True)),
            iip=_number(data.get("iip")),
            iip_ci95=_interval(data.get("iip_ci95")),
            asr=_number(data.get("asr")),
            asr_ci95=_interval(data.get("asr_ci95")),
            raw=MappingProxyType(dict(data)),
        )


@dataclass(frozen=True)
class Row:
    """One row of a report: a model kind under a profile, its worst case over the attacks.

    Attributes
    ----------
    model : ``ann`` or ``snn``
    profile : the profile as the report shows it (``float32``, ``loihi2``, ...)
    iip, iip_ci95 : worst-case share of samples identified (any attack) and its exact 95% interval
    asr, asr_ci95 : worst-case attack success rate (label judge) and its exact 95% interval
    per_attack : recipe name -> :class:`AttackScore`
    test_accuracy : the row's model's test accuracy (None when not trained: ``train_epochs = 0``,
        or an ``attack`` report)
    raw : the row as report.json holds it (PSNR, SSIM, chance floors, energy, timings, ...)
    """

    model: str
    profile: str
    iip: float | None
    iip_ci95: Interval
    asr: float | None
    asr_ci95: Interval
    per_attack: Mapping[str, AttackScore]
    test_accuracy: float | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def label(self) -> str:
        """``model@profile``, as the report's tables name the row."""
        return f"{self.model}@{self.profile}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Row:
        per_attack = data.get("per_attack") or {}
        return cls(
            model=str(data["model"]),
            profile=str(data["profile"]),
            iip=_number(data.get("iip")),
            iip_ci95=_interval(data.get("iip_ci95")),
            asr=_number(data.get("asr")),
            asr_ci95=_interval(data.get("asr_ci95")),
            per_attack=MappingProxyType({k: AttackScore.from_dict(k, v) for k, v in per_attack.items()}),
            test_accuracy=_number(data.get("test_accuracy")),
            raw=MappingProxyType(dict(data)),
        )


@dataclass(frozen=True)
class Report:
    """A run's report (report.json), typed over its main keys.

    Attributes
    ----------
    dataset : the dataset's name
    attack : the recipe or suite that ran
    batch_size : samples per victim update (None: an ``attack`` of captured updates of several
        batch sizes, counted in ``raw["batch_sizes"]``)
    victims : victims attacked (an ``attack`` report states it per row: the first row's)
    rows : the rows in the report's order (``evaluate``: ``ann@float32``, ``snn@float32``, then
        each profile's SNN; ``attack``: one row)
    raw : the whole report as report.json holds it (chance levels, oracle accuracy, reductions, ...)

    Examples
    --------
    >>> r = Report.from_dict({"dataset": "digits", "attack": "suite", "batch_size": 1, "victims": 2,
    ...     "results": [{"model": "ann", "profile": "float32", "iip": 1.0, "iip_ci95": [0.16, 1.0],
    ...                  "asr": 0.5, "asr_ci95": [0.01, 0.99], "per_attack": {}}]})
    >>> r.rows[0].label, r.rows[0].iip, r.row("ann@float32").asr_ci95
    ('ann@float32', 1.0, (0.01, 0.99))
    """

    dataset: str | None
    attack: str | None
    batch_size: int | None
    victims: int | None
    rows: tuple[Row, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """The report of report.json's content ``data``."""
        rows = tuple(Row.from_dict(r) for r in data.get("results") or ())
        victims = data.get("victims")
        if victims is None and rows:
            victims = rows[0].raw.get("victims")
        return cls(
            dataset=data.get("dataset"),
            attack=data.get("attack"),
            batch_size=None if data.get("batch_size", 1) is None else int(data.get("batch_size", 1)),
            victims=None if victims is None else int(victims),
            rows=rows,
            raw=MappingProxyType(dict(data)),
        )

    @classmethod
    def from_json(cls, path: str | Path) -> Report:
        """Read a run's report.json (or the run folder holding it)."""
        p = Path(path)
        if p.is_dir():
            p = p / "report.json"
        return cls.from_dict(json.loads(p.read_text()))

    def row(self, label: str) -> Row:
        """The row named ``label`` (``model@profile``, e.g. ``snn@loihi2``); KeyError if none."""
        for r in self.rows:
            if r.label == label:
                return r
        raise KeyError(f"no row {label!r} (rows: {', '.join(r.label for r in self.rows)})")


_PATHS = ("out", "data_dir", "model", "updates", "checkpoint")


def _settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Path-valued settings given as strings become paths; a single profile name a one-tuple."""
    out: dict[str, Any] = {k: (Path(v) if k in _PATHS and isinstance(v, str) else v) for k, v in settings.items()}
    profiles = out.get("profiles")
    if isinstance(profiles, str):
        out["profiles"] = tuple(p.strip() for p in profiles.split(",") if p.strip())
    return out


def evaluate(*, on_progress: ProgressFn | None = None, **settings: Any) -> Report:
    """Run ``neurofl evaluate``: one federated round, every attack on every victim's update, one
    row per model and profile; writes report.json, report.md and reconstructions.png into ``out``.

    Parameters
    ----------
    on_progress : called with the attacks' progress (as the command's progress bar is)
    **settings : the fields of :class:`neurofl.pipelines.evaluate.EvaluateConfig`: ``profiles`` (a tuple of
        names or paths, or one comma-separated string), ``dataset``, ``attack``, ``clients``,
        ``victims``, ``batch_size``, ``seed``, ``out`` (default ``runs/evaluate``; a finished run
        there with the same settings is resumed), ``data_dir``, ``iterations``, ``arch``,
        ``train_epochs``, ``round``, ``encoding``, ``fl_lr``, ``model``, ``workers``, ``device``.
        An unknown setting raises TypeError.

    Returns
    -------
    Report
        report.json's content.

    Raises
    ------
    neurofl.errors.UserError
        A setting or input the command would refuse (one line saying why).
    """
    from neurofl.pipelines.evaluate import EvaluateConfig, run_evaluate

    return Report.from_dict(run_evaluate(EvaluateConfig(**_settings(settings)), on_progress))


def attack(*, out: str | Path | None = None, on_progress: ProgressFn | None = None, **settings: Any) -> Report:
    """Run ``neurofl attack``: one recipe or suite on fresh victims' updates, or on updates captured
    by ``neurofl fl`` (``updates=DIR``).

    Parameters
    ----------
    out : the run folder (config.json, report.json, reconstructions); None: a temporary folder
    on_progress : called with the attacks' progress
    **settings : the fields of :class:`neurofl.pipelines.attack.AttackConfig`: ``recipe`` (required),
        ``model`` (``snn`` | ``ann``), ``profile``, ``dataset``, ``victims``, ``batch_size``,
        ``clients``, ``local_steps``, ``local_lr``, ``arch``, ``seed``, ``iterations``,
        ``updates``, ``data_dir``, ``checkpoint``, ``device``. An unknown setting raises TypeError.

    Returns
    -------
    Report
        report.json's content: one row, the worst case over the recipes with ``per_attack``.

    Raises
    ------
    neurofl.errors.UserError
        A setting or input the command would refuse (one line saying why).
    """
    from neurofl.pipelines.attack import AttackConfig, run_attack

    folder = Path(out) if out is not None else None
    return Report.from_dict(run_attack(AttackConfig(**_settings(settings)), folder, on_progress))
