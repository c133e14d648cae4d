"""Datasets and input pipelines: CIFAR-10 through tfds, and the embedded procedural ``gd_shapes`` dataset.

Importing this package registers ``gd_shapes`` with tfds.
"""

from gd_bottleneck.data.pipeline import (DATASETS, evaluation_batches, load_factors, load_images, prepare,
                                         training_batches)
from gd_bottleneck.data.shapes import GdShapes, render_scene

__all__ = ["DATASETS", "GdShapes", "evaluation_batches", "load_factors", "load_images", "prepare", "render_scene",
           "training_batches"]
