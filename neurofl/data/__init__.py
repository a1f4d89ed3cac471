"""Datasets (embedded and on disk) and input encodings."""

from neurofl.data.base import Dataset, Splits, available_datasets, load_dataset, split_dataset

__all__ = ["Dataset", "Splits", "available_datasets", "load_dataset", "split_dataset"]
