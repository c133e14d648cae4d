"""gd_bottleneck: Gaussian dropout as an information bottleneck layer (Rey & Mnih), in TensorFlow / Keras 3.

Public API (``docs/api.md``; each name is imported on first use, so ``import gd_bottleneck.client`` stays light):
    GaussianDropoutBottleneck, VariationalBottleneck,   Keras 3 layers (bottlenecks.py)
    IdentityBottleneck, dropout_stddev
    gaussian_dropout_mi_bound                           the paper's Theorem 1, eq. (5) (mi_bound.py)
    DiscretizedLogisticMixture                          the PixelCNN++ likelihood, a tfp Distribution (distributions.py)
    HybridVAE, ModelConfig, paper, small                the hybrid VAE + PixelCNN++ model and its presets (hybrid.py,
                                                        config.py)
    LikelihoodBounds, evaluate_bounds                   IWAE and noise-marginalised bounds (evaluation.py)
    cached_samples, reference_samples, reconstructions  the samplers (sampling.py)
    RunConfig, train                                    training runs (training/)
    export_saved_model                                  SavedModels for TF Serving (export.py)
    ExportedModel, rest_request                         validated requests to an export (client.py)
"""

import importlib
import os

# The library is written for Keras 3 on the TensorFlow backend (tf.distribute, TFP); choose it unless the user
# already did. gd_bottleneck/backend.py refuses another backend with a clear message where the Keras code loads.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"

_PUBLIC = {
    "GaussianDropoutBottleneck": "bottlenecks", "VariationalBottleneck": "bottlenecks",
    "IdentityBottleneck": "bottlenecks", "dropout_stddev": "bottlenecks", "gaussian_dropout_mi_bound": "mi_bound",
    "DiscretizedLogisticMixture": "distributions", "HybridVAE": "hybrid", "ModelConfig": "config", "paper": "config",
    "small": "config", "LikelihoodBounds": "evaluation", "evaluate_bounds": "evaluation",
    "cached_samples": "sampling", "reference_samples": "sampling", "reconstructions": "sampling",
    "RunConfig": "training", "train": "training", "export_saved_model": "export", "ExportedModel": "client",
    "rest_request": "client",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    """Imports a public name's module on first use (PEP 562)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'gd_bottleneck' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"gd_bottleneck.{_PUBLIC[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
