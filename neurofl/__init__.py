"""neurofl: leakage of federated updates from spiking networks on neuromorphic hardware."""

__version__ = "0.1.0"
