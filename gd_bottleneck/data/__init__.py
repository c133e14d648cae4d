"""Datasets and input pipelines: CIFAR-10 through tfds, the embedded procedural ``gd_shapes`` dataset, and
``gd_photos``, patches of the real photographs that installed packages ship.

Importing this package registers ``gd_shapes`` and ``gd_photos`` with tfds.
"""

from gd_bottleneck.data.photos import GdPhotos
from gd_bottleneck.data.pipeline import (
                                         DATASETS,
                                         evaluation_batches,
                                         load_factors,
                                         load_images,
                                         prepare,
                                         training_batches,
)
from gd_bottleneck.data.shapes import GdShapes, render_scene

__all__ = ["DATASETS", "GdPhotos", "GdShapes", "evaluation_batches", "load_factors", "load_images", "prepare",
           "render_scene", "training_batches"]
