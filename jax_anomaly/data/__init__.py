"""Data sets as NumPy arrays: loaders, the one-class protocol and scaling."""

from jax_anomaly.data.idx import parse_idx, read_idx, write_idx
from jax_anomaly.data.one_class import OneClassData, one_class_split, parse_normal
from jax_anomaly.data.sources import Dataset, data_roots, is_photographs, load_dataset, make_synthetic

__all__ = [
    "Dataset",
    "OneClassData",
    "data_roots",
    "is_photographs",
    "load_dataset",
    "make_synthetic",
    "one_class_split",
    "parse_idx",
    "parse_normal",
    "read_idx",
    "write_idx",
]
