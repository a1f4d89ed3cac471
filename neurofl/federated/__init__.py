"""Federated training of SNNs and ANNs under a hardware profile, with defenses and capture."""

from neurofl.federated.capture import CapturedUpdate, load_captured, save_captured
from neurofl.federated.settings import FLConfig, fl_config

__all__ = ["CapturedUpdate", "FLConfig", "fl_config", "load_captured", "save_captured"]
