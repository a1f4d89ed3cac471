"""Models under attack: SLAYER SNNs and matched float ANNs (fully connected or convolutional)."""

from neurofl.models.arch import Architecture, ModelKind, NeuronParams
from neurofl.models.factory import build_model

__all__ = ["Architecture", "ModelKind", "NeuronParams", "build_model", "architecture_for"]


def architecture_for(input_shape: tuple[int, ...], classes: int, arch: str = "auto"):
    """The topology used for a dataset: ``mlp`` (64-128-10 style), ``conv`` (LeNet-style), or
    ``auto`` = mlp for static inputs of at most 64 pixels per channel (the 8x8 digits), conv otherwise."""
    from neurofl.models.conv import ConvArchitecture

    if arch == "auto":
        small = len(input_shape) == 3 and input_shape[1] * input_shape[2] <= 64
        arch = "mlp" if small else "conv"
    if arch == "mlp":
        if len(input_shape) != 3:
            from neurofl.errors import UserError

            raise UserError(f"--arch mlp takes static images; inputs of shape {input_shape} need --arch conv")
        return Architecture(tuple(input_shape), classes)
    return ConvArchitecture(tuple(input_shape), classes)
