"""gd_bottleneck: Gaussian dropout as an information bottleneck layer (Rey & Mnih), in TensorFlow / Keras 3.

Public API:
    GaussianDropoutBottleneck, VariationalBottleneck   Keras 3 layers (bottlenecks.py)
    gaussian_dropout_mi_bound                          the paper's Theorem 1, eq. (5) (bottlenecks.py)
    DiscretizedLogisticMixture                         the PixelCNN++ likelihood as a tfp Distribution
    HybridVAE, ModelConfig, paper, small               the hybrid VAE + PixelCNN++ model and its presets
"""

import os

# The library is written for Keras 3 on the TensorFlow backend (tf.distribute, TFP); choose it unless the user
# already did, and refuse another backend with a clear message rather than failing deep inside a layer.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        f"gd_bottleneck needs the Keras 'tensorflow' backend; Keras is using {keras.backend.backend()!r}. "
        "Set KERAS_BACKEND=tensorflow before importing keras.")

from gd_bottleneck.bottlenecks import (  # noqa: E402
    GaussianDropoutBottleneck,
    VariationalBottleneck,
    dropout_stddev,
    gaussian_dropout_mi_bound,
)
from gd_bottleneck.config import ModelConfig, paper, small  # noqa: E402
from gd_bottleneck.distributions import DiscretizedLogisticMixture  # noqa: E402
from gd_bottleneck.hybrid import HybridVAE  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "DiscretizedLogisticMixture",
    "GaussianDropoutBottleneck",
    "HybridVAE",
    "ModelConfig",
    "VariationalBottleneck",
    "dropout_stddev",
    "gaussian_dropout_mi_bound",
    "paper",
    "small",
]
