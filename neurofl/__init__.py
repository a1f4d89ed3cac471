"""neurofl: leakage of federated updates from spiking networks on neuromorphic hardware.

The Python API (:mod:`neurofl.api`) is importable from here: ``neurofl.evaluate(...)`` and
``neurofl.attack(...)`` run the two leakage commands and return a :class:`neurofl.api.Report`.
They are loaded on first use, so ``import neurofl`` (and ``neurofl --help``) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

__all__ = ["AttackScore", "Report", "Row", "__version__", "attack", "evaluate"]

if TYPE_CHECKING:
    from neurofl.api import AttackScore, Report, Row, attack, evaluate

_API = frozenset(("AttackScore", "Report", "Row", "attack", "evaluate"))


def __getattr__(name: str) -> Any:
    if name in _API:
        from neurofl import api

        return getattr(api, name)
    raise AttributeError(f"module 'neurofl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
