"""The embedded ``gd_shapes`` dataset: procedural scenes with global structure and local texture, no download.

Why it exists: CIFAR-10 needs a download, and natural images do not record *what* is in them. Here every image is
rendered from generative factors that the dataset stores next to the pixels, so "does the model use its latents?"
becomes measurable (e.g. a linear probe from the VAE latents to the factors), and the tests and demo run offline.

A scene is a striped, tinted background (global: hue, stripe angle and period) with 1-3 objects drawn largest first;
each object has a kind (circle, square, triangle, diamond), a colour from a 6-colour palette, a size and a position.
Objects are shaded by a soft light from the top left, and every pixel gets small deterministic noise (local texture
that an autoregressive model can learn but a VAE with few latents cannot encode).

Factors are stored per object slot, largest object first, ``MAX_OBJECTS`` slots; an empty slot has ``kind == 0``
("none"), ``color == 0`` and zero size and position. Sizes and positions are fractions of the image side.

Generation is deterministic: example ``i`` of a split is rendered from ``numpy.random.default_rng([split_id, i])``,
so every machine builds byte-identical datasets. Usage::

    import gd_bottleneck.data  # registers the builder
    ds = tfds.load("gd_shapes/16", split="train")   # builds it on first use (seconds), no network
"""

import colorsys
import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from gd_bottleneck.data.build_messages import LocalBuildMessages

MAX_OBJECTS = 3
KINDS = ("none", "circle", "square", "triangle", "diamond")
COLORS = ("none", "red", "green", "blue", "yellow", "magenta", "cyan")
PALETTE = np.array([[0, 0, 0], [220, 40, 40], [40, 190, 60], [50, 80, 230], [235, 215, 40], [210, 50, 200],
                    [40, 210, 220]], np.float64)
SPLIT_IDS = {"train": 0, "test": 1}
NOISE_LEVELS = 6.0  # standard deviation of the per-pixel texture noise, in pixel levels (0..255)


def _shape_mask(kind, dx, dy, radius):
    """Boolean mask of one object (``dx``, ``dy``: offsets from its centre, fractions of the side; y points down)."""
    if KINDS[kind] == "circle":
        return dx ** 2 + dy ** 2 <= radius ** 2
    if KINDS[kind] == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.85 * radius
    if KINDS[kind] == "triangle":  # apex up, base at dy = 0.8 r
        return (dy >= -radius) & (dy <= 0.8 * radius) & (np.abs(dx) <= 0.6 * (dy + radius))
    return np.abs(dx) + np.abs(dy) <= 1.15 * radius  # diamond


def render_scene(rng, image_size):
    """Draws one scene: returns ``(image uint8 [S, S, 3], factors dict)`` (see the module docstring).

    The image is ``clip(round(mean + noise), 0, 255)`` with ``mean`` from :func:`scene_mean` and iid
    ``N(0, NOISE_LEVELS**2)`` noise per sub-pixel, drawn last from ``rng``.
    """
    mean, factors = scene_mean(rng, image_size)
    image = mean + rng.normal(0.0, NOISE_LEVELS, mean.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), factors


def scene_mean(rng, image_size):
    """Draws one scene's factors and renders its noise-free image: ``(mean float64 [S, S, 3], factors dict)``.

    Separate from :func:`render_scene` so that the dataset's entropy floor (``data.entropy_floor``) can be computed
    from the exact pixel means; drawing from ``rng`` in the same order keeps the dataset byte-identical.
    """
    centres = (np.arange(image_size) + 0.5) / image_size
    y, x = np.meshgrid(centres, centres, indexing="ij")

    hue, angle, period = rng.uniform(0.0, 1.0), rng.uniform(0.0, np.pi), rng.uniform(0.15, 0.4)
    base = 255.0 * np.array(colorsys.hsv_to_rgb(hue, 0.35, 0.55))
    stripes = 1.0 + 0.18 * np.sin(2.0 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
    image = base * stripes[..., None]

    count = int(rng.integers(1, MAX_OBJECTS + 1))
    sizes = np.sort(rng.uniform(0.12, 0.3, count))[::-1]
    objects = {"kind": np.zeros(MAX_OBJECTS, np.int64), "color": np.zeros(MAX_OBJECTS, np.int64),
               "size": np.zeros(MAX_OBJECTS, np.float32), "x": np.zeros(MAX_OBJECTS, np.float32),
               "y": np.zeros(MAX_OBJECTS, np.float32)}
    for slot, radius in enumerate(sizes):
        kind, color = int(rng.integers(1, len(KINDS))), int(rng.integers(1, len(COLORS)))
        cx, cy = rng.uniform(0.2, 0.8, 2)
        mask = _shape_mask(kind, x - cx, y - cy, radius)
        shading = 1.0 - 0.35 * np.clip(((x - cx) + (y - cy)) / (2.0 * radius), -1.0, 1.0)
        image = np.where(mask[..., None], PALETTE[color] * shading[..., None], image)
        for name, value in zip(("kind", "color", "size", "x", "y"), (kind, color, radius, cx, cy)):
            objects[name][slot] = value

    background = {"hue": np.float32(hue), "stripe_angle": np.float32(angle), "stripe_period": np.float32(period)}
    return image, {"num_objects": np.int64(count), "objects": objects, "background": background}


@dataclasses.dataclass(eq=False)
class ShapesConfig(tfds.core.BuilderConfig):
    """One resolution of the dataset, with its split sizes."""

    image_size: int = 32
    train_examples: int = 20000
    test_examples: int = 2000


class GdShapes(LocalBuildMessages, tfds.core.GeneratorBasedBuilder):
    """Procedural scenes of coloured objects on textured backgrounds, with their generative factors."""

    BUILD_SECONDS = {"32": 20, "16": 10, "8": 8, "8_tiny": 1}  # measured once, 2 cores

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "First release.",
                     "1.1.0": "8x8 at full size (20,000 / 2,000 images); the small 8x8 set for tests is '8_tiny'."}
    BUILDER_CONFIGS = [
        ShapesConfig(name="32", description="32x32 scenes (CIFAR-10's size).", image_size=32),
        ShapesConfig(name="16", description="16x16 scenes: the demo's default, trains in minutes on a CPU.",
                     image_size=16),
        ShapesConfig(name="8", description="8x8 scenes: objects and background hue survive, stripes mostly not; "
                                            "the CPU-scale Figure 2 sweep's size.", image_size=8),
        ShapesConfig(name="8_tiny", description="8x8 scenes, few examples: for tests.", image_size=8,
                     train_examples=512, test_examples=128),
    ]

    def _info(self):
        size = self.builder_config.image_size
        slots = lambda dtype: tfds.features.Tensor(shape=(MAX_OBJECTS,), dtype=dtype)  # noqa: E731
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3)),
                "num_objects": tfds.features.Tensor(shape=(), dtype=np.int64),
                "objects": {"kind": slots(np.int64), "color": slots(np.int64), "size": slots(np.float32),
                            "x": slots(np.float32), "y": slots(np.float32)},
                "background": {name: tfds.features.Tensor(shape=(), dtype=np.float32)
                               for name in ("hue", "stripe_angle", "stripe_period")},
            }),
            supervised_keys=None,
            homepage="https://github.com/gd-bottleneck/gd_bottleneck",
        )

    def build_summary(self):
        config = self.builder_config
        return (f"{config.train_examples:,} train and {config.test_examples:,} test procedural "
                f"{config.image_size}x{config.image_size} scenes")

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        config = self.builder_config
        return {"train": self._generate_examples("train", config.train_examples),
                "test": self._generate_examples("test", config.test_examples)}

    def _generate_examples(self, split, count):
        for index in range(count):
            image, factors = render_scene(np.random.default_rng([SPLIT_IDS[split], index]),
                                          self.builder_config.image_size)
            yield index, {"image": image, **factors}
