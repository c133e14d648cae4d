"""Likelihood bounds of a trained HybridVAE, tighter than its ELBO, in bits/dim per image.

The paper scores a model by its ELBO with one z sample and the bottleneck's noise switched off. Two things make
that a loose and uneven instrument: the ELBO's gap to log p(x) grows with how much the model uses its latents (the
axis of Figure 2), and switching the noise off evaluates a decoder that training never saw. This module computes,
for the same model and images:

* ``elbo_bpd``: the paper's -ELBO (noise off, analytic KL) at z sample 0; with evaluation seed 0 that is the
  evaluation stream's z, and the figure is ``HybridVAE.elbo``'s (and results.json's) exactly.
* ``iwae_bpd``: -log of Burda et al.'s importance-weighted bound over K samples of q(z|x), noise off::

      log p(x) >= E[ log 1/K sum_k p(x | z_k) p(z_k) / q(z_k | x) ],   z_k ~ q(z | x)

* ``noise_marginal_bpd``: the same bound for the model *with* its bottleneck noise. The noise on v_j changes only
  pixel j's distribution, so the noisy decoder is autoregressive with continuous-mixture conditionals
  ``p(x_j | x_<j, z) = E_eps[DLM(x_j; mixer(bottleneck(v_j, eps), u_j))]``. Each is estimated by the mean of S
  noise draws; the product over pixels of these unbiased averages is unbiased for p(x | z) (the draws are
  independent across pixels), so by Jensen its log, importance-weighted over z as above, bounds the noisy model's
  log-likelihood from below and tightens as S and K grow. v and u are computed once per z sample; only the
  bottleneck and the mixer run S times.
* ``kl_bpd``: the VAE's KL(q(z|x) || N(0, I)), analytic.

At K = 1 the IWAE bound is the single-sample ELBO with the KL estimated at the drawn z (log q(z|x) - log p(z)); it
equals the paper's ELBO in expectation over z, and its reconstruction term is the paper's bit for bit (z sample 0
of seed 0 is the evaluation stream's draw). With S = 1 the noisy term is the noisy evaluation (one noise draw).

Reproducibility: z sample k of evaluation seed e, and the bottleneck noise that goes with it, come from the layers'
own noise streams (gd_bottleneck/noise.py) at stream ``-1 - k - e * 2**32``, so the bounds are a deterministic
function of the weights, the images, the batch size, K, S and e, and N replicas give what one replica gives.
"""

import math
import os

import numpy as np
import tensorflow as tf

from gd_bottleneck.distributions import DiscretizedLogisticMixture
from gd_bottleneck.hybrid import validate_images
from gd_bottleneck.validation import check_int, check_seed

MAX_Z_SAMPLES = 1 << 16  # cost grows linearly in K (one decoder pass each); beyond this it is days per test set
STREAMS_PER_SEED = 1 << 32
BOUND_NAMES = ("elbo_bpd", "iwae_bpd", "noise_marginal_bpd", "kl_bpd")
MEMORY_FRACTION = 0.5  # of the physical memory, the most the S noise draws of one batch may take


def z_sample_stream(k, seed):
    """The noise stream (an int64 count, < 0: never a training counter) of z sample ``k`` of evaluation ``seed``."""
    return -1 - tf.cast(k, tf.int64) - tf.constant(seed * STREAMS_PER_SEED, tf.int64)


def log_mean_exp(values, axis=0):
    """``log(mean(exp(values), axis))`` without overflow."""
    count = tf.cast(tf.shape(values)[axis], values.dtype)
    return tf.reduce_logsumexp(values, axis=axis) - tf.math.log(count)


def latent_log_ratio(z, mean, scale):
    """``log q(z | x) - log N(z; 0, I)`` per image ``[B]`` in nats (float64), for a diagonal Gaussian q; its
    expectation over q is the analytic KL."""
    z, mean, scale = (tf.cast(t, tf.float64) for t in (z, mean, scale))
    noise = (z - mean) / scale
    terms = 0.5 * (tf.square(z) - tf.square(noise)) - tf.math.log(scale)
    return tf.reduce_sum(tf.reshape(terms, [tf.shape(terms)[0], -1]), axis=1)


def check_samples(z_samples, noise_samples):
    """``(K, S)`` as ints, or ``ValueError`` naming the argument and its range."""
    z_samples = check_int(z_samples, "z_samples", 1)
    noise_samples = check_int(noise_samples, "noise_samples", 1)
    if z_samples > MAX_Z_SAMPLES:
        raise ValueError(f"Argument `z_samples` must be in [1, {MAX_Z_SAMPLES}] (each sample is a full decoder pass; "
                         f"the bound's gain beyond a few hundred is tiny). Received: z_samples={z_samples}")
    return z_samples, noise_samples


def noise_draw_bytes(config, batch_size, noise_samples):
    """Bytes the S noise draws of one batch hold at once (v, u, the mixer's hidden layer and parameters, and the
    per-pixel log-probabilities; float32, with a factor 2 for the temporaries beside them)."""
    per_pixel = (config.pixelcnn_output_dim + config.decoder_output_channels + config.mixer_units
                 + 10 * config.mixture_components + 4)
    return 2 * 4 * batch_size * noise_samples * config.image_size ** 2 * per_pixel


def check_memory(config, batch_size, noise_samples, available=None):
    """``ValueError`` naming ``noise_samples`` when its draws for one batch would take more than half the memory."""
    if available is None:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    needed = noise_draw_bytes(config, batch_size, noise_samples)
    if needed > MEMORY_FRACTION * available:
        largest = max(0, int(MEMORY_FRACTION * available // noise_draw_bytes(config, batch_size, 1)))
        raise ValueError(f"Argument `noise_samples`={noise_samples} with batches of {batch_size} images needs about "
                         f"{needed / 2**30:.1f} GiB at once, more than half of this machine's "
                         f"{available / 2**30:.1f} GiB: use noise_samples <= {largest}, or smaller batches.")


class LikelihoodBounds:
    """Per-image bounds of ``model`` (see the module docstring): call it on a batch of uint8-valued images
    ``[B, H, W, 3]``; returns ``{name: [B] float64}`` for :data:`BOUND_NAMES`, in bits/dim (lower is better:
    each is a negative log-likelihood bound).

    Args:
        model: a :class:`~gd_bottleneck.hybrid.HybridVAE` (weights as trained).
        z_samples: K >= 1, importance samples of q(z | x).
        noise_samples: S >= 1, bottleneck noise draws per z sample and pixel (1 for a bottleneck without noise).
        seed: evaluation seed in [0, 2**31): which streams the z samples and noise come from.

    Under ``tf.distribute`` call it inside ``strategy.run``; each replica's images are its slice of the global batch.
    """

    def __init__(self, model, z_samples=16, noise_samples=16, seed=0):
        self.model = model
        self.z_samples, self.noise_samples = check_samples(z_samples, noise_samples)
        self.seed = check_seed(seed)
        self.noisy = hasattr(model.bottleneck_layer, "fixed_stream")  # "none" has no noise to marginalise
        self._function = tf.function(self._bounds, reduce_retracing=True)

    def __call__(self, images):
        return self._function(images)

    def sample_terms(self, pixels, x, mean, scale, k):
        """For z sample ``k``: ``(recon, noisy_recon, log_ratio)``, each ``[B]`` nats: -log p(x | z_k) noise off
        (float32, as the ELBO computes it), its S-draw noise-marginal estimate (float64), and
        log q(z_k | x) - log p(z_k) (float64)."""
        model, draws = self.model, self.noise_samples
        stream = z_sample_stream(k, self.seed)
        with model.latent_sample.fixed_stream(stream):
            z = model.latent_sample([mean, scale], training=False)
        decoded = model.hybrid_decoder([z, x], training=False)
        recon = -tf.reduce_sum(DiscretizedLogisticMixture.from_params(decoded["params"]).log_prob(pixels), [1, 2])
        if not self.noisy:
            noisy_recon = tf.cast(recon, tf.float64)
        else:
            # Image-major repeats ([B * S]: image i's draws are rows i * S .. i * S + S - 1), so that a replica's
            # rows are a contiguous slice of the global batch's and N replicas draw what one replica draws.
            with model.bottleneck_layer.fixed_stream(stream):
                params = model.mixture_params(tf.repeat(decoded["v"], draws, axis=0),
                                              tf.repeat(decoded["u"], draws, axis=0), training=True)
            log_prob = DiscretizedLogisticMixture.from_params(params).log_prob(tf.repeat(pixels, draws, axis=0))
            log_prob = tf.reshape(tf.cast(log_prob, tf.float64), tf.concat([[-1, draws], tf.shape(log_prob)[1:]], 0))
            noisy_recon = -tf.reduce_sum(log_mean_exp(log_prob, axis=1), [1, 2])
        return recon, noisy_recon, latent_log_ratio(z, mean, scale)

    def _bounds(self, images):
        model = self.model
        pixels = validate_images(images, model.config.image_size)
        x = model.rescale(pixels)
        mean, scale = model.encoder(x, training=False)
        recon, noisy_recon, log_ratio = self.sample_terms(pixels, x, mean, scale, 0)
        # The paper's ELBO: the same ops as HybridVAE.terms / per_image_metrics, so the same float32 values.
        kl = tf.reduce_sum(0.5 * (tf.square(mean) + tf.square(scale) - 1.0) - tf.math.log(scale), [1, 2, 3])
        result = {"elbo_bpd": tf.cast((recon + kl) * model.bits_per_nat, tf.float64),
                  "kl_bpd": tf.cast(kl * model.bits_per_nat, tf.float64)}

        batch = tf.shape(pixels)[0]
        weights = tf.TensorArray(tf.float64, size=self.z_samples, element_shape=[None])
        noisy_weights = tf.TensorArray(tf.float64, size=self.z_samples, element_shape=[None])
        weights = weights.write(0, -tf.cast(recon, tf.float64) - log_ratio)
        noisy_weights = noisy_weights.write(0, -noisy_recon - log_ratio)
        for k in tf.range(1, self.z_samples):
            recon_k, noisy_k, ratio_k = self.sample_terms(pixels, x, mean, scale, k)
            weights = weights.write(k, -tf.cast(recon_k, tf.float64) - ratio_k)
            noisy_weights = noisy_weights.write(k, -noisy_k - ratio_k)
        to_bpd = -1.0 / (model.config.dims_per_image * math.log(2.0))
        result["iwae_bpd"] = log_mean_exp(tf.reshape(weights.stack(), [-1, batch]), axis=0) * to_bpd
        result["noise_marginal_bpd"] = log_mean_exp(tf.reshape(noisy_weights.stack(), [-1, batch]), axis=0) * to_bpd
        return result


def evaluate_bounds(model, images, z_samples=16, noise_samples=16, batch_size=32, seed=0, strategy=None,
                    progress=None):
    """Per-image bounds of every image of ``images`` (uint8 ``[N, H, W, 3]``) in stored order, in batches of
    ``batch_size`` (global over replicas; the last may be smaller): ``{name: float64 [N]}`` in bits/dim.

    ``strategy``: a ``tf.distribute`` strategy whose scope holds ``model``'s variables (None: the default one).
    ``progress(done, total)`` is called after each batch.
    """
    batch_size = check_int(batch_size, "batch_size", 1)
    check_memory(model.config, batch_size, noise_samples)
    bounds = LikelihoodBounds(model, z_samples, noise_samples, seed)
    strategy = strategy or tf.distribute.get_strategy()
    dataset = tf.data.Dataset.from_tensor_slices(np.asarray(images)).batch(batch_size)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    distributed = strategy.experimental_distribute_dataset(dataset.with_options(options))

    @tf.function
    def step(batch):
        per_replica = strategy.run(bounds, args=(batch,))
        # Local results in replica order (not strategy.gather, a collective: see tests/replicas.py).
        return {name: tf.concat(strategy.experimental_local_results(per_replica[name]), axis=0)
                for name in BOUND_NAMES}

    parts, done = {name: [] for name in BOUND_NAMES}, 0
    for batch in distributed:
        values = step(batch)
        for name in BOUND_NAMES:
            parts[name].append(values[name].numpy())
        done += len(values["elbo_bpd"])
        if progress is not None:
            progress(done, len(images))
    return {name: np.concatenate(parts[name]) for name in BOUND_NAMES}


def summarize(per_image):
    """``{name: {"mean", "ci95"}}``: the mean over images and its 95% normal-approximation half-width
    (1.96 standard errors; the images are many and independent)."""
    summary = {}
    for name, values in per_image.items():
        values = np.asarray(values, np.float64)
        half = 1.96 * values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.nan
        summary[name] = {"mean": float(values.mean()), "ci95": float(half)}
    return summary
