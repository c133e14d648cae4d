"""Reproducible, replica-consistent noise for Keras layers.

Every layer in this library that injects noise (the two bottlenecks, PixelCNN++ dropout) derives it from three
things only: the layer's integer ``seed``, a per-layer call counter, and the global batch size. Consequences:

* **Stateless and seeded.** Noise comes from ``tf.random.stateless_*`` ops; the same seed and counter give the same
  noise eagerly and inside ``tf.function``. XLA (``jit_compile=True``) lowers these ops to a different, equally
  valid Philox bit stream (measured on TF 2.21), so XLA runs reproduce each other but not non-XLA runs.
* **Checkpointable.** The counter is an ordinary (non-trainable, int64) layer weight, so ``tf.train.Checkpoint``,
  ``save_weights`` and ``.keras`` files all carry it: a resumed run continues the noise stream instead of replaying
  it (Keras' own ``SeedGenerator`` state is *not* saved by ``tf.train.Checkpoint`` or ``.weights.h5``, measured on
  Keras 3.15).
* **Replica-consistent.** Under ``tf.distribute`` each replica draws the noise of the *whole global batch* and keeps
  its own slice (rows ``[r * b, (r + 1) * b)`` for replica ``r`` with local batch ``b``). Replicas therefore get
  different noise, and N replicas produce exactly the noise a single replica would for the same global batch, so
  training results do not depend on the number of devices. The global batch size is folded into the seed, so an
  uneven final batch (replicas holding different numbers of examples) still gets non-overlapping streams. The cost
  is drawing N times more random numbers per replica, which is negligible next to the convolutions.
"""

import contextlib

import keras
import tensorflow as tf

from gd_bottleneck.backend import require_tensorflow_backend
from gd_bottleneck.validation import check_rate, check_seed

require_tensorflow_backend()


class SeededNoiseLayer(keras.layers.Layer):
    """Base class: a Keras layer that owns an integer seed and a checkpointed noise-call counter.

    Subclasses call :meth:`standard_normal` / :meth:`uniform` inside ``call`` when they need noise; each call of
    either advances the counter by one.

    Args:
        seed: int in ``[0, 2**31)`` or ``None`` (a seed is drawn and recorded in ``get_config``, so a config always
            reproduces the layer's noise).
    """

    EVALUATION_STREAM = -1  # the counter value of the fixed stream used by advance=False (counters are >= 0)

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = check_seed(seed)
        # On-read synchronization gives each replica its own copy, advanced locally without a merge_call. Every
        # replica advances it identically, so reading (and checkpointing) the first replica's copy is exact. A
        # merge_call here would pause replicas mid-`call` and let one clear Keras' shared `layer.losses` list
        # before the other has read it, mis-weighting `add_loss` terms under MirroredStrategy.
        self._fixed_stream = None  # see fixed_stream()
        with keras.name_scope(self.name, caller=self):
            self.noise_calls = keras.Variable(
                initializer=keras.initializers.Zeros(), shape=(), dtype="int64", trainable=False,
                aggregation="only_first_replica", synchronization="on_read", name="noise_calls")

    def _replica_slice_seed(self, x, advance):
        """Returns (seed [2] int64, global batch size, first row of this replica, local batch size)."""
        local_batch = tf.shape(x, out_type=tf.int64)[0]
        context = tf.distribute.get_replica_context()
        if context is None:  # cross-replica context: the whole batch is here
            replica_id, num_replicas = 0, 1
        else:
            replica_id, num_replicas = context.replica_id_in_sync_group, context.num_replicas_in_sync
        global_batch = local_batch * num_replicas
        if self._fixed_stream is not None:
            count = tf.cast(self._fixed_stream, tf.int64)
        elif advance:
            # Take the count from the increment's own result: under tf.distribute a separate read of an on-read
            # variable is not ordered before the increment in graph mode and can see the new value.
            count = tf.cast(self.noise_calls.assign_add(1), tf.int64) - 1
        else:
            count = tf.constant(self.EVALUATION_STREAM, tf.int64)
        seed = tf.constant([self.seed, 0], tf.int64)
        seed = tf.random.experimental.stateless_fold_in(seed, count)
        seed = tf.random.experimental.stateless_fold_in(seed, global_batch)
        first_row = tf.cast(replica_id, tf.int64) * local_batch
        return seed, global_batch, first_row, local_batch

    def _draw(self, sampler, x, dtype, advance):
        seed, global_batch, first_row, local_batch = self._replica_slice_seed(x, advance)
        shape = tf.concat([[global_batch], tf.shape(x, out_type=tf.int64)[1:]], axis=0)
        noise = sampler(shape, seed=seed, dtype=dtype)
        return noise[first_row:first_row + local_batch]

    @contextlib.contextmanager
    def fixed_stream(self, stream):
        """Inside, every draw of this layer (training mode included) comes from stream ``stream`` and the counter is
        left alone: a caller that needs many independent, reproducible draws of a layer's own noise (the likelihood
        bounds of gd_bottleneck/evaluation.py) keys them by stream. ``stream`` is an int64 scalar (Python or
        tensor); negative streams never collide with the training counter, which counts up from 0, and
        ``EVALUATION_STREAM`` is the one ``advance=False`` uses. Read when a draw is traced, so a ``tf.function``
        must be traced inside the context."""
        previous, self._fixed_stream = self._fixed_stream, stream
        try:
            yield
        finally:
            self._fixed_stream = previous

    def standard_normal(self, x, dtype=None, advance=True):
        """N(0, 1) noise with the shape of ``x`` (this replica's rows of the global batch's draw).

        ``advance=False`` draws from a fixed evaluation stream and leaves the counter alone, so inference that
        needs noise (e.g. posterior samples for a test ELBO) is a deterministic function of its inputs.
        """
        return self._draw(tf.random.stateless_normal, x, dtype or x.dtype, advance)

    def uniform(self, x, dtype=None, advance=True):
        """U[0, 1) noise with the shape of ``x``; see :meth:`standard_normal`."""
        return self._draw(tf.random.stateless_uniform, x, dtype or x.dtype, advance)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class SeededDropout(SeededNoiseLayer):
    """Binary (inverted) dropout with this module's replica-consistent, checkpointed noise.

    Keras' ``Dropout`` draws the same mask on every replica under MirroredStrategy and its RNG state is not saved;
    this layer drops each element independently with probability ``rate`` in training and scales survivors by
    ``1 / (1 - rate)``, and is the identity otherwise.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = check_rate(rate)

    def call(self, x, training=None):
        if not training or self.rate == 0.0:
            return x
        # Uniforms in float32 whatever x's dtype: bfloat16 uniforms come in steps of 1/128, which would turn a rate
        # of 0.15 into 0.156. For float32 inputs this is the same draw as before.
        keep = tf.cast(self.uniform(x, dtype=tf.float32) >= self.rate, x.dtype)
        return x * keep / (1.0 - self.rate)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class GaussianSample(SeededNoiseLayer):
    """Reparameterized sample ``mean + scale * n``, ``n ~ N(0, I)``, of a diagonal Gaussian (e.g. a VAE posterior).

    Unlike the bottlenecks this layer samples at inference too, because an ELBO is an expectation over the
    posterior; inference draws come from the fixed evaluation stream, so a test-mode ELBO is deterministic.

    Call arguments: ``[mean, scale]``, two tensors of the same shape ``[B, ...]``; ``training``.
    """

    def call(self, inputs, training=None):
        mean, scale = inputs
        return mean + scale * self.standard_normal(mean, advance=bool(training))

    def compute_output_shape(self, input_shape):
        return input_shape[0]
