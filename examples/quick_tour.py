"""A short tour of the core library: `make tour` (`make demo` trains the model).

1. Theorem 1: the MI bound of a Gaussian dropout layer, per rate, and its invariance to rescaling.
2. The two bottleneck layers: identity / mean at test time, noise and the KL penalty in training.
3. The PixelCNN++ likelihood: fit a discretized logistic mixture to the colours of a synthetic image set by
   maximum likelihood and report bits/dim as it learns, then sample from it.

Run: python -m examples.quick_tour
"""

import math
import time

import keras
import numpy as np
import tensorflow as tf

from gd_bottleneck import (
    DiscretizedLogisticMixture,
    GaussianDropoutBottleneck,
    VariationalBottleneck,
    dropout_stddev,
    gaussian_dropout_mi_bound,
)


def mi_bound_table():
    features = np.random.default_rng(0).lognormal(mean=0.0, sigma=0.5, size=(20_000, 1)) - 0.5
    print("1) Theorem 1: upper bound on I(X; Y) through Gaussian dropout, X = LogNormal(0, 0.5) - 0.5")
    print("   rate   sigma   bound [nats]   bound for 1000*X [nats]")
    for rate in (0.015, 0.05, 0.15, 0.3, 0.5, 0.8):
        bound = float(gaussian_dropout_mi_bound(features, rate)[0])
        scaled = float(gaussian_dropout_mi_bound(1000.0 * features, rate)[0])
        print(f"   {rate:<6} {dropout_stddev(rate):<7.3f} {bound:<14.4f} {scaled:.4f}")


def bottleneck_layers():
    v = tf.random.stateless_normal([4, 8, 8, 10], seed=(1, 2))  # a PixelCNN++ output v: [B, H, W, 10]
    dropout = GaussianDropoutBottleneck(dropout_rate=0.15, seed=0)
    variational = VariationalBottleneck(units=10, beta=0.02, seed=0)
    noisy = dropout(v, training=True)
    print("\n2) Bottleneck layers on v [4, 8, 8, 10]")
    print(f"   GaussianDropoutBottleneck(0.15): test-time output == input: "
          f"{bool(tf.reduce_all(dropout(v, training=False) == v))}; "
          f"training relative noise std {float(tf.math.reduce_std(noisy / v - 1.0)):.3f} "
          f"(sigma = {dropout_stddev(0.15):.3f})")
    variational(v, training=True)
    print(f"   VariationalBottleneck(10, beta=0.02): penalty beta*KL = {float(variational.losses[0]):.1f} nats/image "
          f"({float(variational.losses[0]) / (8 * 8 * 3 * math.log(2)):.3f} bits/dim at 8x8x3)")


def fit_mixture(steps=300):
    rng = np.random.default_rng(1)
    # Colours of a synthetic image set: three "objects" with correlated channels, plus saturated highlights.
    centres = np.array([[200, 60, 40], [30, 120, 220], [240, 240, 240]])
    labels = rng.choice(3, size=20_000, p=[0.5, 0.35, 0.15])
    pixels = np.clip(np.round(centres[labels] + rng.normal(scale=18.0, size=(20_000, 1))
                              + rng.normal(scale=6.0, size=(20_000, 3))), 0, 255).astype(np.float32)
    params = tf.Variable(tf.random.stateless_normal([DiscretizedLogisticMixture.num_params(5)], (3, 4), stddev=0.1))
    optimizer = keras.optimizers.Adam(learning_rate=0.05)

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            bits_per_dim = -tf.reduce_mean(DiscretizedLogisticMixture.from_params(params).log_prob(batch)) / (
                3 * math.log(2))
        optimizer.apply_gradients([(tape.gradient(bits_per_dim, params), params)])
        return bits_per_dim

    print("\n3) Fitting a 5-component discretized logistic mixture to 20k synthetic pixel colours")
    start = time.perf_counter()
    for i in range(steps + 1):
        bpd = step(pixels[rng.integers(0, len(pixels), 2048)])
        if i % 75 == 0:
            print(f"   step {i:4d}  {float(bpd):.3f} bits/dim   (uniform over 256 values = 8.000)")
    print(f"   {steps} steps in {time.perf_counter() - start:.1f} s")
    samples = DiscretizedLogisticMixture.from_params(params).sample(6, seed=(5, 6)).numpy().astype(int)
    print("   samples (r, g, b):", ", ".join(str(tuple(s)) for s in samples.tolist()))


if __name__ == "__main__":
    mi_bound_table()
    bottleneck_layers()
    fit_mixture()
