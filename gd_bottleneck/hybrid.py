"""HybridVAE: the paper's model (section 3, figure 1), with its objective and metrics in bits/dim.

    images x [B,H,W,3] (0..255) -> rescale to [-1, 1]
      encoder(x) -> q(z|x) = N(mean, scale) over [4,4,16];  z ~ q  (reparameterized)
      decoder(z) -> u [B,H,W,256]
      pixelcnn(x, u) -> v [B,H,W,10]            v_j sees only x_<j and u
      bottleneck(v) -> v~                        any registered Bottleneck (gd_bottleneck/bottleneck_registry.py)
      mixer([v~, u]) per pixel: Dense(266, ELU) -> Dense(100) = DiscretizedLogisticMixture parameters
      log p(x|z) = sum_j log DLM_j(x_j)          (colour channels conditioned inside the distribution)

    decoder, pixelcnn, bottleneck and mixer form one Keras functional model, ``model.hybrid_decoder``
    (gd_bottleneck/hybrid_decoder.py); this class owns the encoder, the objective, the training step and the metrics.

    -ELBO(x) = -log p(x|z) + KL(q(z|x) || N(0, I))                          (eq. 6, one z sample)
    loss     = -ELBO + w * bottleneck penalty   [variational: w = beta, penalty = sum_j KL(p(v_j|.) || N(0, I))]
               + aux_weight * -log p_aux(x|z)                 [auxiliary decoder, Lucas & Verbeek 2018]

All reported figures are per image in bits/dim: nats / (H * W * 3 * ln 2). At test time no bottleneck noise and no
dropout are injected; z is still sampled (an ELBO is an expectation over q), from a fixed evaluation stream so the
test-mode ELBO of an image batch is deterministic.
"""

import math

import keras
import tensorflow as tf

from gd_bottleneck import bottleneck_registry, weight_norm
from gd_bottleneck.config import ModelConfig
from gd_bottleneck.distributions import DiscretizedLogisticMixture
from gd_bottleneck.hybrid_decoder import build_hybrid_decoder
from gd_bottleneck.noise import GaussianSample
from gd_bottleneck.pixelcnn import PixelCNN
from gd_bottleneck.seeding import derived_seeds, initializer_seeds
from gd_bottleneck.vae import Decoder, Encoder
from gd_bottleneck.validation import check_nonnegative, check_seed


def validate_images(images, image_size):
    """Checks a batch of images and returns it as float32 ``[B, H, W, 3]`` with integer values in 0..255.

    Static problems (rank, channels, size, dtype) raise ``ValueError``; values (outside 0..255, fractional, NaN)
    raise ``InvalidArgumentError`` from the graph, naming the problem.
    """
    images = tf.convert_to_tensor(images)
    if images.dtype.is_complex or images.dtype == tf.bool or images.dtype == tf.string:
        raise ValueError(f"`images` must be uint8, an integer or a float type. Received dtype {images.dtype.name}.")
    shape = images.shape
    if shape.rank != 4 or shape[-1] != 3:
        raise ValueError(f"`images` must have shape [batch, {image_size}, {image_size}, 3]. Received {shape}.")
    if (shape[1] is not None and shape[1] != image_size) or (shape[2] is not None and shape[2] != image_size):
        raise ValueError(f"`images` must be {image_size}x{image_size} (the model's image_size). Received {shape}.")
    if images.dtype != tf.uint8:  # uint8 is valid by construction
        images = tf.cast(images, tf.float32)
        valid = tf.reduce_all((images >= 0.0) & (images <= 255.0) & tf.equal(images, tf.round(images)))
        tf.debugging.Assert(valid, ["`images` must hold integer pixel values in [0, 255] (no NaN, no fractions)."])
    return tf.cast(images, tf.float32)


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class HybridVAE(keras.Model):
    """VAE + PixelCNN++ with an information bottleneck on the PixelCNN++ output (Rey & Mnih, section 3).

    Args:
        config: a :class:`~gd_bottleneck.config.ModelConfig` (or its dict).
        bottleneck: a registered kind (``bottleneck_registry.names()``): ``"gaussian_dropout"`` (its strength is
            ``dropout_rate`` in [0, 1)), ``"variational"`` (``beta >= 0``) or ``"none"``.
        dropout_rate: Gaussian dropout rate p; sigma = sqrt(p / (1 - p)).
        beta: weight of the variational bottleneck's KL penalty (nats per image, like the ELBO).
        aux_weight: weight of an auxiliary non-autoregressive decoder's NLL (0: no auxiliary decoder). The auxiliary
            decoder maps u per pixel to mixture parameters, so its likelihood can only use what z encodes
            (Lucas & Verbeek 2018); with ``bottleneck="none"`` it is the paper's other baseline.
        seed: base seed of the initial weights and of every noise source (posterior samples, dropout, bottleneck).

    Calling the model on images returns per-image test-mode terms in bits/dim (see :meth:`elbo`); ``fit`` and
    ``evaluate`` report the same names averaged, plus ``loss``.
    """

    def __init__(self, config, bottleneck="none", dropout_rate=None, beta=None, aux_weight=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.config = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
        self._strength = bottleneck_registry.get(bottleneck).strength_argument  # an unknown kind fails before any layer
        self.bottleneck = bottleneck
        self.dropout_rate, self.beta = dropout_rate, beta  # the layer's constructor validates its own (below)
        self.aux_weight = check_nonnegative(aux_weight, "aux_weight")
        self.seed = check_seed(seed)
        with initializer_seeds(self.seed):  # sublayers may create their own layers in build()
            self._create_layers()
            self.build()

    def _create_layers(self):
        """Creates the sublayers and metrics (inside :func:`initializer_seeds`, so ``seed`` fixes the weights)."""
        latent_seed, pixelcnn_seed, bottleneck_seed = derived_seeds(self.seed, 3)
        cfg, bottleneck = self.config, self.bottleneck
        self.encoder = Encoder(cfg, dtype=cfg.precision, name="encoder")
        self.latent_sample = GaussianSample(seed=latent_seed, name="latent_sample")
        self.decoder = Decoder(cfg, dtype=cfg.precision, name="decoder")
        self.pixelcnn = PixelCNN(cfg.pixelcnn_filters, cfg.pixelcnn_resnets_per_stage, cfg.pixelcnn_stages,
                                            cfg.pixelcnn_dropout, cfg.pixelcnn_output_dim, seed=pixelcnn_seed,
                                            weight_norm=cfg.weight_norm, dtype=cfg.precision, name="pixelcnn")
        self.bottleneck_layer = bottleneck_registry.create(bottleneck, cfg.pixelcnn_output_dim, seed=bottleneck_seed,
                                                           dropout_rate=self.dropout_rate, beta=self.beta)
        for name in ("dropout_rate", "beta"):  # the bottleneck's own setting as its layer validated it; others unused
            setattr(self, name, getattr(self.bottleneck_layer, name) if name == self._strength else None)
        self.mixer_hidden = keras.layers.Dense(cfg.mixer_units, activation="elu", name="mixer_hidden")
        self.mixer_output = self._mixture_head("mixer_output")
        self.aux_head = self._mixture_head("aux_decoder") if self.aux_weight > 0 else None

        self.hybrid_decoder = build_hybrid_decoder(cfg, self.decoder, self.pixelcnn, self.bottleneck_layer,
                                                   self.mixer_hidden, self.mixer_output, self.aux_head)
        names = ["loss", "elbo_bpd", "kl_bpd", "recon_bpd"]
        if self.bottleneck_layer.has_penalty:
            names.append(f"{self.bottleneck_layer.penalty_name}_bpd")
        names += [f"{name}_bpd" for name in self.bottleneck_layer.metric_names]
        names += ["aux_bpd"] if self.aux_head is not None else []
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}

    def _mixture_head(self, name):
        """A per-pixel Dense layer to mixture parameters that starts near the flat distribution (~8.3 bits/dim)."""
        flat = DiscretizedLogisticMixture.flat_params(self.config.mixture_components)
        small = keras.initializers.VarianceScaling(0.01, mode="fan_in", distribution="truncated_normal")
        return keras.layers.Dense(len(flat), kernel_initializer=small,
                                  bias_initializer=keras.initializers.Constant(flat), name=name)

    # ------------------------------------------------------------------ the model

    @property
    def bits_per_nat(self):
        """Multiply nats per image by this to get bits/dim."""
        return 1.0 / (self.config.dims_per_image * math.log(2.0))

    def rescale(self, images):
        """Pixel values 0..255 -> [-1, 1] (PixelCNN++'s convention: 0 -> -1 and 255 -> +1 exactly)."""
        return images / 127.5 - 1.0

    def encode(self, images, training=False):
        """``(mean, stddev)`` of q(z | x), each ``[B, latent_size, latent_size, latent_channels]``."""
        images = validate_images(images, self.config.image_size)
        return self.encoder(self.rescale(images), training=training)

    def decode_params(self, z, images, training=False):
        """Flat mixture parameters ``[B, H, W, K * 10]`` of p(x | z), teacher-forced on ``images``.

        The parameters at pixel j depend only on ``images`` at pixels before j (raster order) and on ``z``.
        """
        images = validate_images(images, self.config.image_size)
        return self.hybrid_decoder([z, self.rescale(images)], training=training)["params"]

    def mixture_params(self, v, u, training=False):
        """The per-pixel head of :attr:`hybrid_decoder` alone: bottleneck on v, then the mixer MLP on ``[v~, u]``.

        ``v [..., output_dim]`` and ``u [..., decoder_output_channels]`` for any leading shape (the cached sampler
        calls it on single pixels). The same layers and ops as the functional graph, so the same parameters.
        """
        v_tilde, _ = self.bottleneck_layer.transform(v, training=training)
        return self.mixer_output(self.mixer_hidden(tf.concat([v_tilde, u], axis=-1)))

    @tf.autograph.experimental.do_not_convert  # plain Python control flow only; saves seconds of tracing
    def terms(self, images, training=False):
        """Per-image terms of the objective, in nats, as a dict of ``[B]`` tensors (plus ``v`` for metrics)."""
        pixels = validate_images(images, self.config.image_size)
        x = self.rescale(pixels)
        mean, scale = self.encoder(x, training=training)
        z = self.latent_sample([mean, scale], training=training)
        decoded = self.hybrid_decoder([z, x], training=training)
        # 1. reconstruction: -log p(x | z), summed over pixels
        log_prob = DiscretizedLogisticMixture.from_params(decoded["params"]).log_prob(pixels)
        result = {"recon": -tf.reduce_sum(log_prob, [1, 2])}
        # 2. latent KL(q(z|x) || N(0, I)), analytic, summed over the latents
        result["kl"] = tf.reduce_sum(0.5 * (tf.square(mean) + tf.square(scale) - 1.0) - tf.math.log(scale), [1, 2, 3])
        # 3. the bottleneck's penalty (if it has one) and the auxiliary decoder's NLL
        if "bottleneck_penalty" in decoded:
            result["penalty"] = decoded["bottleneck_penalty"]
        if "aux_params" in decoded:
            aux = DiscretizedLogisticMixture.from_params(decoded["aux_params"])
            result["aux"] = -tf.reduce_sum(aux.log_prob(pixels), [1, 2])
        result["v"] = decoded["v"]
        return result

    def objective(self, terms):
        """Per-image loss in bits/dim: -ELBO + penalty_weight * bottleneck penalty + aux_weight * aux NLL."""
        nats = terms["recon"] + terms["kl"]
        if "penalty" in terms:
            nats += self.bottleneck_layer.penalty_weight * terms["penalty"]
        if "aux" in terms:
            nats += self.aux_weight * terms["aux"]
        return nats * self.bits_per_nat

    def per_image_metrics(self, terms):
        """The reported per-image figures, bits/dim: elbo_bpd (= -ELBO, no penalty), kl_bpd, recon_bpd, ..."""
        scale = self.bits_per_nat
        metrics = {"elbo_bpd": (terms["recon"] + terms["kl"]) * scale, "kl_bpd": terms["kl"] * scale,
                   "recon_bpd": terms["recon"] * scale}
        if "penalty" in terms:
            metrics[f"{self.bottleneck_layer.penalty_name}_bpd"] = terms["penalty"] * scale
        if "aux" in terms:
            metrics["aux_bpd"] = terms["aux"] * scale
        return metrics

    def bottleneck_metrics_bpd(self, v):
        """The bottleneck's diagnostics of a batch of v (e.g. the Theorem 1 bound), in bits/dim: the layer reports
        nats per pixel, and a pixel has 3 sub-pixels."""
        return {f"{name}_bpd": nats / (3.0 * math.log(2.0)) for name, nats in self.bottleneck_layer.metrics(v).items()}

    def initialize_from_data(self, images):
        """Data-dependent initialisation of the weight-normalised layers (``config.weight_norm``; a no-op
        otherwise): one eager test-mode pass over ``images`` inside
        :func:`~gd_bottleneck.weight_norm.data_dependent_initialization`. Call it once, before training from
        scratch, with a training batch (the same batch on every worker, so replicas agree)."""
        if self.config.weight_norm:
            with weight_norm.data_dependent_initialization():
                self.terms(images, training=False)

    def call(self, images, training=None):
        """Per-image bits/dim figures (dict of ``[B]``); see :meth:`per_image_metrics`."""
        return self.per_image_metrics(self.terms(images, training=training))

    def elbo(self, images):
        """Test-mode per-image figures in bits/dim (no bottleneck noise, no dropout): ``elbo_bpd`` is -ELBO."""
        return self.per_image_metrics(self.terms(images, training=False))

    # ------------------------------------------------------------------ fit / evaluate

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _update_metrics(self, terms, loss):
        self.trackers["loss"].update_state(loss)
        for name, value in self.per_image_metrics(terms).items():
            self.trackers[name].update_state(value)
        for name, value in self.bottleneck_metrics_bpd(terms["v"]).items():
            self.trackers[name].update_state(value)
        results = {name: tracker.result() for name, tracker in self.trackers.items()}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras (3.15) reduces step outputs across workers with reduce("MEAN", axis=0), which needs an axis:
            # give each (already globally aggregated) scalar one, and the reduction returns it as a scalar.
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results

    @staticmethod
    def _images_of(data):
        return data[0] if isinstance(data, (tuple, list)) else data

    @tf.autograph.experimental.do_not_convert  # plain Python control flow only; saves seconds of tracing
    def train_step(self, data):
        images = self._images_of(data)
        with tf.GradientTape() as tape:
            terms = self.terms(images, training=True)
            loss = tf.reduce_mean(self.objective(terms))
            # The optimizer sums gradients over replicas: each replica contributes its mean / num_replicas.
            scaled_loss = loss / tf.distribute.get_strategy().num_replicas_in_sync
            scaled_loss = self.optimizer.scale_loss(scaled_loss)  # a LossScaleOptimizer's scale (mixed_float16)
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return self._update_metrics(terms, loss)

    @tf.autograph.experimental.do_not_convert  # plain Python control flow only; saves seconds of tracing
    def test_step(self, data):
        terms = self.terms(self._images_of(data), training=False)
        return self._update_metrics(terms, tf.reduce_mean(self.objective(terms)))

    def compile(self, optimizer="rmsprop", **kwargs):
        """Keras' compile; with ``precision="mixed_float16"`` the optimizer is wrapped in a ``LossScaleOptimizer``
        (Keras only does that for models whose own policy is mixed_float16, and this model's policy is float32:
        only its networks are mixed). Use ``model.optimizer`` afterwards (the wrapper, holding the loss scale)."""
        optimizer = keras.optimizers.get(optimizer)
        if self.config.precision == "mixed_float16" and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        super().compile(optimizer=optimizer, **kwargs)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras (3.15, TF backend) MEAN-reduces the first data batch across replicas just to learn its shapes. Under
        # MultiWorkerMirroredStrategy that is a collective, and collectives do not support uint8 images (the error
        # is "Value for attr 'T' of uint8 is not in the list of allowed values"). This model builds its weights in
        # __init__, so the step is needed only when the optimizer is not built yet.
        if self.built and self.optimizer is not None and self.optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def build(self, input_shape=None):
        """Creates every weight by running the model once on a zero batch of the configured size."""
        if self.built:
            return
        size = self.config.image_size
        self.terms(tf.zeros([1, size, size, 3], tf.float32), training=False)
        super().build(input_shape)

    # ------------------------------------------------------------------ serialization

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict(), "bottleneck": self.bottleneck,
                "dropout_rate": self.dropout_rate, "beta": self.beta, "aux_weight": self.aux_weight,
                "seed": self.seed}
