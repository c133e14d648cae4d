"""Reference figures of an image dataset: per-channel moments and the bits/dim of pixel-independent baselines.

Why: a likelihood in bits/dim means little without a floor to compare it with. The two baselines here ignore all
structure between sub-pixels, so any model worth training must beat them:

* ``marginal_bpd``: one 256-way histogram per channel, shared by all positions;
* ``independent_bpd``: one histogram per position and channel (what a model with no context can do at best).

Both are fitted on the training split and scored on the test split, with add-one (Laplace) smoothing so that a level
unseen in training costs finite bits. CIFAR-10's published per-channel means and standard deviations (training
split, pixel values scaled to [0, 1]) are kept for comparison.
"""

import numpy as np

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def channel_moments(images):
    """``(mean [3], std [3])`` of uint8 images ``[N, H, W, 3]`` over all pixels, in [0, 1] units (float64)."""
    values = images.reshape(-1, 3).astype(np.float64) / 255.0
    return values.mean(axis=0), values.std(axis=0)


def _log2_table(counts):
    """``log2`` of add-one-smoothed level probabilities, ``[slots, 256]``, from level ``counts [slots, 256]``."""
    return np.log2((counts + 1.0) / (counts.sum(axis=-1, keepdims=True) + 256.0))


def marginal_bpd(train, test):
    """Bits/dim of the test images under one smoothed level histogram per channel fitted on ``train``."""
    counts = np.stack([np.bincount(train[..., c].ravel(), minlength=256) for c in range(3)]).astype(np.float64)
    table = _log2_table(counts)
    levels = test.reshape(-1, 3).astype(np.int64)  # [N*H*W, 3]
    return float(-np.mean(table[np.arange(3)[None, :], levels]))


def independent_bpd(train, test):
    """Bits/dim of the test images under one smoothed level histogram per position and channel fitted on
    ``train``."""
    slots = int(np.prod(train.shape[1:]))
    counts = np.zeros((slots, 256), np.float64)
    np.add.at(counts, (np.tile(np.arange(slots), len(train)), train.reshape(-1).astype(np.int64)), 1.0)
    table = _log2_table(counts)
    levels = test.reshape(len(test), slots).astype(np.int64)  # [N, slots]
    return float(-np.mean(table[np.arange(slots)[None, :], levels]))
