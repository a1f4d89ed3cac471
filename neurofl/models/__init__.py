"""Models under attack: SLAYER SNNs and matched float ANNs."""

from neurofl.models.factory import Architecture, ModelKind, build_model

__all__ = ["Architecture", "ModelKind", "build_model"]
