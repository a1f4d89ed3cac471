"""Datasets (embedded and on disk) and input encodings."""

from neurofl.data.base import Dataset, Splits, split_dataset
from neurofl.data.registry import available_datasets, load_dataset

__all__ = ["Dataset", "Splits", "available_datasets", "load_dataset", "split_dataset"]
