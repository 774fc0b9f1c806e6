"""Datasets (CIFAR, IDX, image folders; folders or archives), the decode-once cache, batches."""

from .dataset import DataBundle, FileSet, ImageSet, stratified_split
from .registry import NAMED, default_budget, load_dataset

__all__ = ["NAMED", "DataBundle", "FileSet", "ImageSet", "default_budget", "load_dataset", "stratified_split"]
