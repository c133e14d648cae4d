"""The embedded dataset's entropy floor: the best negative log-likelihood any model can reach, in bits/dim.

A ``gd_shapes`` image is ``x = clip(round(m + n), 0, 255)`` where ``m`` is the scene's noise-free rendering and ``n``
iid ``N(0, sigma^2)`` per sub-pixel (``shapes.NOISE_LEVELS``). So the expected NLL of the best model, the entropy
``H(x)``, splits as

    H(x) = H(x | scene) + I(x; scene)

- ``H(x | scene)`` is known exactly: given ``m``, each sub-pixel is an independent discretized, clipped Gaussian,
  whose entropy is a sum over its 256 values. No model can go below it: it is the **floor** (it cannot be learned
  away, it is the pixel noise).
- ``I(x; scene) = I(x; m) <= I(m + n; m) <= 1/2 log det(I + Cov(m) / sigma^2)`` (data processing, then the Gaussian
  maximises entropy for a given covariance): an **upper bound on the scene information** the image carries, which
  is at most what the latents could ever need to hold. ``Cov(m)`` is estimated from the split's scenes.

So ``floor <= H(x) <= floor + scene_information_bound``; a model's test NLL (the -ELBO) is at least ``H(x)``.
Both figures are per image, divided by H * W * 3 sub-pixels (bits/dim, the unit of the ELBO).
"""

import math

import numpy as np
from scipy import special

from gd_bottleneck.data import shapes


def discretized_gaussian_entropy_bits(mean, sigma):
    """Entropy in bits of ``clip(round(mean + N(0, sigma^2)), 0, 255)``, elementwise over the array ``mean``."""
    mean = np.asarray(mean, np.float64)[..., None]
    edges = np.arange(-0.5, 256.0, 1.0)  # bin k holds [k - 0.5, k + 0.5); values < 0.5 -> 0 and >= 254.5 -> 255
    cdf = special.ndtr((edges - mean) / sigma)
    cdf[..., 0], cdf[..., -1] = 0.0, 1.0  # the clip: all mass below 0.5 is value 0, above 254.5 is 255
    probabilities = np.diff(cdf, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probabilities > 0, -probabilities * np.log2(probabilities), 0.0)
    return terms.sum(axis=-1)


def scene_means(split, image_size, count):
    """The noise-free renderings ``m`` of the first ``count`` scenes of a split: float64 ``[count, S, S, 3]``."""
    return np.stack([shapes.scene_mean(np.random.default_rng([shapes.SPLIT_IDS[split], index]), image_size)[0]
                     for index in range(count)])


def entropy_floor(split="test", image_size=16, count=2000, sigma=shapes.NOISE_LEVELS):
    """``{"floor_bpd", "scene_information_bound_bpd", ...}`` of the first ``count`` scenes of a split.

    ``floor_bpd`` is the mean over those images of H(x | scene) per sub-pixel (exact for them); the bound uses their
    covariance (``count`` must exceed the number of sub-pixels for it to be well estimated).
    """
    means = scene_means(split, image_size, count)
    dims = image_size * image_size * 3
    floor = float(np.mean([discretized_gaussian_entropy_bits(image, sigma).sum() for image in means]) / dims)
    flat = means.reshape(count, dims)
    covariance = np.cov(flat, rowvar=False)
    sign, log_det = np.linalg.slogdet(np.eye(dims) + covariance / sigma ** 2)
    assert sign > 0, "I + Cov/sigma^2 is positive definite"
    bound = 0.5 * log_det / math.log(2.0) / dims
    interior = float(discretized_gaussian_entropy_bits(127.3, sigma))  # no clipping: ~ the Gaussian's
    return {"split": split, "image_size": image_size, "images": count, "noise_sigma_levels": sigma,
            "floor_bpd": floor, "scene_information_bound_bpd": float(bound),
            "best_nll_upper_bound_bpd": floor + float(bound), "unclipped_pixel_entropy_bits": interior}
