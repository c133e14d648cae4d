"""Autoregressive sampling from a trained :class:`~gd_bottleneck.hybrid.HybridVAE`.

Pixels are drawn in raster order; at each pixel the model's (test-mode) mixture parameters are computed from the
pixels drawn so far and from z, and the three colour channels are drawn in order through the mixture's channel
conditioning (:meth:`DiscretizedLogisticMixture.sample_from_noise`).

Randomness is explicit and per image: image ``b`` of a request with ``seed`` uses the stream
``stateless_fold_in(seed, b)`` for its latent draw and for all of its pixels' uniforms, drawn up front. So the same
seed gives the same images whatever the batch size (image ``b`` of a batch of 4 equals image ``b`` of a batch of 64).

``reference_samples`` is the plain sampler: one full network pass per pixel, H * W passes per image.
``cached_samples`` (Fast PixelCNN++) computes each activation once per image
(:class:`~gd_bottleneck.pixelcnn_cache.IncrementalPixelCNN`) and draws the same images from the same noise.
"""

import keras
import tensorflow as tf

from gd_bottleneck.distributions import DiscretizedLogisticMixture, gumbel_noise, logistic_noise
from gd_bottleneck.pixelcnn_cache import IncrementalPixelCNN, crop, write_pixel

_LATENT, _COMPONENTS, _CHANNELS = 0, 1, 2  # sub-streams of an image's seed


def image_seeds(seed, num_images):
    """``[num_images, 2]`` int32 stateless seeds, one per image index."""
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
    return tf.map_fn(lambda index: tf.random.experimental.stateless_fold_in(seed, index),
                     tf.range(num_images), fn_output_signature=tf.TensorSpec([2], tf.int32))


def _per_image(seeds, stream, shape, draw):
    return tf.map_fn(lambda s: draw(shape, seed=tf.random.experimental.stateless_fold_in(s, stream)), seeds,
                     fn_output_signature=tf.float32)


def prior_latents(model, seed, num_images):
    """z ~ N(0, I), ``[num_images, latent_size, latent_size, latent_channels]``, per-image streams of ``seed``."""
    cfg = model.config
    shape = [cfg.latent_size, cfg.latent_size, cfg.latent_channels]
    return _per_image(image_seeds(seed, num_images), _LATENT, shape, tf.random.stateless_normal)


def row_shared_latents(model, seed, num, columns):
    """``num`` latents for a grid of ``columns`` per row where each row repeats one z ~ N(0, I) (the paper's
    Figure 3: decoded with per-image noise, what stays fixed along a row is what the latents hold)."""
    rows = -(-num // columns)
    return tf.repeat(prior_latents(model, seed, rows), columns, axis=0)[:num]


def posterior_latents(model, images, seed):
    """z ~ q(z | images) with per-image streams of ``seed`` (the latents of a reconstruction)."""
    mean, stddev = model.encode(images)
    noise = _per_image(image_seeds(seed, tf.shape(mean)[0]), _LATENT, mean.shape[1:], tf.random.stateless_normal)
    return mean + stddev * noise


def pixel_uniforms(model, seed, num_images):
    """The uniforms of every pixel: ``([B, H, W, K], [B, H, W, 3])`` in (0, 1) for component and channel draws."""
    cfg = model.config
    seeds = image_seeds(seed, num_images)
    tiny = float(tf.experimental.numpy.finfo(tf.float32).tiny)
    uniform = lambda shape, seed: tf.random.stateless_uniform(shape, seed, minval=tiny, maxval=1.0)  # noqa: E731
    size = cfg.image_size
    return (_per_image(seeds, _COMPONENTS, [size, size, cfg.mixture_components], uniform),
            _per_image(seeds, _CHANNELS, [size, size, 3], uniform))


def pixel_noise(model, seed, num_images):
    """:func:`pixel_uniforms` transformed for :meth:`DiscretizedLogisticMixture.sample_from_noise`: Gumbel noise
    ``[B, H, W, K]`` and logistic noise ``[B, H, W, 3]``, every pixel's at once (not per pixel in the loop)."""
    component_uniforms, channel_uniforms = pixel_uniforms(model, seed, num_images)
    return gumbel_noise(component_uniforms), logistic_noise(channel_uniforms)


def draw_pixel(params, gumbel, logistic):
    """Samples one pixel per image from flat mixture parameters ``[B, P]`` and its noise (:func:`pixel_noise`):
    ``[B, 3]`` float values 0..255."""
    return DiscretizedLogisticMixture.from_params(params).sample_from_noise(gumbel, logistic)


@tf.function(reduce_retracing=True)
def reference_samples(model, z, seed, num_pixels=None):
    """uint8 images ``[B, H, W, 3]`` drawn from p(x | z), one full network pass per pixel (H * W passes).

    ``num_pixels`` draws only the first that many pixels in raster order (the rest stay 0): every pass costs the
    same, so a timed prefix gives the full sampler's cost per pixel step (benchmarks/sampling.py)."""
    size = model.config.image_size
    if num_pixels is not None and not 0 <= num_pixels <= size * size:
        raise ValueError(f"num_pixels must be in [0, {size * size}] (the image's pixels). Received: {num_pixels}")
    last = size * size if num_pixels is None else num_pixels
    num_images = tf.shape(z)[0]
    gumbel, logistic = pixel_noise(model, seed, num_images)

    def draw_next(index, images):
        row, col = index // size, index % size
        params = model.decode_params(z, images)[:, row, col]
        pixel = draw_pixel(params, gumbel[:, row, col], logistic[:, row, col])
        return index + 1, write_pixel(images, row, col, pixel)

    images = tf.zeros([num_images, size, size, 3], tf.float32)
    _, images = tf.while_loop(lambda index, _: index < last, draw_next, (tf.constant(0), images))
    return tf.cast(images, tf.uint8)


def _draw_with_caches(model, u, gumbel, logistic):
    """The cached generation loop: ``u [B, H, W, Cu]`` and the pixels' noise in, float images ``[B, H, W, 3]`` out.

    Every slice keeps a static shape (``pixelcnn_cache.crop``): TensorFlow's graph optimizations need them. XLA is
    not used: it was no faster here and rounds transcendental functions differently (docs/design.md, "Measurements
    behind the code").
    """
    size = model.config.image_size
    num_images = tf.shape(u)[0]
    with keras.StatelessScope(state_mapping=[(variable, tf.convert_to_tensor(variable.value))
                                             for variable in model.variables]):
        # Every weight is read once here, and the loop body uses these tensors: a variable read inside the loop
        # would be one more op per layer and pixel (118 per pixel step for small()).
        return _draw_loop(model, u, gumbel, logistic, size, num_images)


def _draw_loop(model, u, gumbel, logistic, size, num_images):
    """Rows in an outer loop, pixels in an inner one. The inner loop carries only what a pixel step changes (the
    ul stream's caches, the image); the u stream's row values are loop invariants there. A single loop over all
    pixels would carry every cache through every step, and decide with a per-pixel condition whether a row starts:
    both cost TensorFlow ops per tensor and pixel, which dominate a small model's step.

    The stages below the first compute only at pixels whose row and column are both even (stage s + 1 at
    multiples of 2^(s + 1)), so odd rows, half of the pixels, run a pixel loop without a condition; even rows decide
    per pixel with a ``tf.cond``, whose cost does not depend on the branch taken. Two pixels per step in even rows
    would save little and cost a bigger graph (docs/design.md, "Measurements behind the code")."""
    network = IncrementalPixelCNN(model.pixelcnn, u)
    deepest = network.stages - 1

    def draw_row(row, state, images):
        state = network.start_row(state, row)
        row_part = {key: value for key, value in state.items() if key not in network.PIXEL_KEYS}

        def pixel_loop(depth_bounds):
            """The row's pixel loop, every pixel's depth within ``depth_bounds``."""
            def draw_pixel_at(col, pixel_part, images):
                v, after = network.output({**row_part, **pixel_part}, row, col, depth_bounds)
                at = lambda t: crop(t, rows=(row, 1), columns=(col, 1))[:, 0, 0]  # noqa: E731
                params = model.mixture_params(v, crop(u, rows=(row, 1), columns=(col, 1)))
                pixel = draw_pixel(params[:, 0, 0], at(gumbel), at(logistic))
                after = network.set_pixel(after, row, col, model.rescale(pixel))
                images = write_pixel(images, row, col, pixel, network.image_indices)
                return col + 1, {key: after[key] for key in network.PIXEL_KEYS}, images

            return lambda: tf.while_loop(lambda col, *_: col < size, draw_pixel_at,
                                         (tf.constant(0), pixel_part, images))[1:]

        pixel_part = {key: state[key] for key in network.PIXEL_KEYS}
        if deepest == 0:
            pixel_part, images = pixel_loop((0, 0))()
        else:
            pixel_part, images = tf.cond(row % 2 == 1, pixel_loop((0, 0)), pixel_loop((0, deepest)))
        return row + 1, {**row_part, **pixel_part}, images

    images = tf.zeros([num_images, size, size, 3], tf.float32)
    _, _, images = tf.while_loop(lambda row, *_: row < size, draw_row,
                                 (tf.constant(0), network.initial_state(), images))
    return images


@tf.function(reduce_retracing=True)
def cached_samples(model, z, seed):
    """uint8 images ``[B, H, W, 3]`` drawn from p(x | z) with cached activations: the reference's images, faster."""
    gumbel, logistic = pixel_noise(model, seed, tf.shape(z)[0])
    u = model.decoder(z, training=False)
    return tf.cast(_draw_with_caches(model, u, gumbel, logistic), tf.uint8)


@tf.function(reduce_retracing=True)
def reconstructions(model, images, seed):
    """uint8 images ``[B, H, W, 3]`` drawn from p(x | z) with z ~ q(z | images) (``images`` uint8): what the
    latents of ``images`` keep of them. One traced function for the library, the exported ``reconstruct``
    signature, ``trainers.sample --reconstruct`` and the trainer's image summaries, so that they all compute the
    latents the same way, to the last bit: a latent one rounding step apart can change a drawn sub-pixel."""
    return cached_samples(model, posterior_latents(model, images, seed), seed)
