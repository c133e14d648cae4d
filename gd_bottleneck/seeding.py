"""Seeds: the same ``seed`` gives the same initial weights in every process, and one seed makes the seeds of a
model's noisy sublayers.

Why this is needed: a Keras 3 initializer created without a seed (``"glorot_uniform"``, ``Dense()``'s defaults,
every initializer of Keras' own layers) draws its seed from Python's global ``random`` module when it is *created*
(``keras.src.random.seed_generator.make_default_seed``), and from then on initialises deterministically from that
int. So the initial weights are fixed exactly when the global ``random`` state is fixed while the layers are
constructed. :func:`initializer_seeds` does that for the duration of a model's construction only, and puts the
caller's ``random`` state back afterwards, so a library call never changes the user's random streams.
"""

import contextlib
import random

import numpy as np


def derived_seeds(seed, count):
    """``count`` distinct seeds in ``[0, 2**31)`` determined by ``seed`` (one per noisy sublayer)."""
    return [int(s) % 2**31 for s in np.random.SeedSequence(seed).generate_state(count, dtype=np.uint32)]


@contextlib.contextmanager
def initializer_seeds(seed):
    """Within the block, every unseeded Keras initializer created gets a seed determined by ``seed`` (an int).

    The seeds depend on ``seed`` and on the order in which initializers are created, which is fixed by the
    architecture: two constructions of the same model with the same seed get bit-identical initial weights.
    """
    saved = random.getstate()
    random.seed(f"gd_bottleneck.initializers:{int(seed)}")  # a str seed hashes with SHA-512, stable across processes
    try:
        yield
    finally:
        random.setstate(saved)
