"""gd_bottleneck.evaluation: the IWAE and noise-marginalised bounds against the ELBO, exact marginals and replicas."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from gd_bottleneck import HybridVAE
from gd_bottleneck.distributions import DiscretizedLogisticMixture
from gd_bottleneck.evaluation import BOUND_NAMES, LikelihoodBounds, check_memory, evaluate_bounds, latent_log_ratio
from gd_bottleneck.training import files, train
from tests.cli_runs import REPO, environment
from tests.tiny_models import TINY, tiny_run

# 4x4 images with a 1-dimensional latent and a 1-dimensional v: the exact marginals are 1-d integrals (quadrature).
EXACT_CASE = TINY.replace(image_size=4, latent_size=1, latent_channels=1, pixelcnn_stages=1, pixelcnn_output_dim=1)


def images(count, size=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3)).astype(np.uint8)


@pytest.mark.parametrize("kind, strength", [("gaussian_dropout", {"dropout_rate": 0.5}),
                                            ("variational", {"beta": 1.0})])
def test_one_sample_and_one_draw_reproduce_the_elbo_and_the_noisy_evaluation(kind, strength):
    model = HybridVAE(TINY, bottleneck=kind, seed=3, **strength)
    batch = images(4)
    bounds = LikelihoodBounds(model, z_samples=1, noise_samples=1)
    result = bounds(batch)
    elbo = tf.function(model.elbo)(batch)  # in a graph, as the bounds are computed (eager may differ by an ulp)
    np.testing.assert_array_equal(result["elbo_bpd"], elbo["elbo_bpd"].numpy().astype(np.float64))
    np.testing.assert_array_equal(result["kl_bpd"], elbo["kl_bpd"].numpy().astype(np.float64))

    @tf.function
    def first_sample_terms(batch):
        pixels = tf.cast(batch, tf.float32)
        x = model.rescale(pixels)
        mean, scale = model.encoder(x)
        return bounds.sample_terms(pixels, x, mean, scale, 0)

    recon, noisy_recon, log_ratio = (t.numpy() for t in first_sample_terms(batch))
    np.testing.assert_array_equal(recon, tf.function(model.terms)(batch)["recon"])  # sample 0: the evaluation's z
    to_bpd = 1.0 / (TINY.dims_per_image * math.log(2.0))
    np.testing.assert_allclose(result["iwae_bpd"], (recon.astype(np.float64) + log_ratio) * to_bpd,
                               rtol=1e-12)
    np.testing.assert_allclose(result["noise_marginal_bpd"], (noisy_recon + log_ratio) * to_bpd, rtol=1e-12)

    # The noisy evaluation: the model's own test pass with the bottleneck's training noise, drawn from stream -1.
    layer = model.bottleneck_layer
    layer.noise_calls.assign(-1)  # its next draw: count -1, the stream of z sample 0 of seed 0
    transform = layer.transform
    layer.transform = lambda v, training=None: transform(v, training=True)
    try:
        noisy_evaluation = tf.function(model.terms)(batch)["recon"].numpy()
    finally:
        del layer.transform
    np.testing.assert_allclose(noisy_recon, noisy_evaluation, rtol=1e-6)
    assert np.abs(noisy_recon - recon).max() > 1e-3  # the noise changed something


def test_the_latent_log_ratio_averages_to_the_analytic_kl():
    rng = np.random.default_rng(1)
    mean, scale = rng.normal(0.0, 1.0, (2, 3, 5)), rng.uniform(0.2, 1.5, (2, 3, 5))
    draws = 20000
    z = mean + scale * rng.normal(size=(draws, 2, 3, 5))
    ratios = latent_log_ratio(z.reshape(draws * 2, 3, 5), np.tile(mean, (draws, 1, 1)),
                              np.tile(scale, (draws, 1, 1))).numpy().reshape(draws, 2)
    analytic = np.sum(0.5 * (mean ** 2 + scale ** 2 - 1.0) - np.log(scale), axis=(1, 2))
    standard_error = ratios.std(axis=0) / math.sqrt(draws)
    assert np.all(np.abs(ratios.mean(axis=0) - analytic) < 4 * standard_error)


def sharpened_exact_case_model():
    """The 1-d latent / 1-d v model with a mixer whose output depends strongly on v, so that the bottleneck's noise
    moves the likelihood by a fraction of a bit per dim (a near-flat initial mixer would make every test pass)."""
    model = HybridVAE(EXACT_CASE, bottleneck="gaussian_dropout", dropout_rate=0.5, seed=1)
    kernel, bias = model.mixer_output.get_weights()
    model.mixer_output.set_weights([30.0 * kernel, bias])
    return model


def exact_log_likelihoods(model, image, z_nodes, eps_step):
    """``(noise_off, noisy)`` exact log p(x) in nats of one image, in float64: Gauss-Hermite quadrature with
    ``z_nodes`` nodes over the 1-d latent z ~ N(0, 1), and per pixel a trapezoid rule of step ``eps_step`` on
    [-8, 8] over the 1-d Gaussian dropout noise eps ~ N(0, 1) (v -> v * (1 + sigma eps)): the mixer's ELUs make that
    integrand only piecewise smooth, where Gauss-Hermite converges slowly."""
    sigma = model.bottleneck_layer.stddev
    nodes, z_weights = np.polynomial.hermite_e.hermegauss(z_nodes)
    z_weights = z_weights / z_weights.sum()
    pixels = tf.constant(np.repeat(image[None], z_nodes, 0), tf.float32)
    decoded = model.hybrid_decoder([tf.constant(nodes.reshape(-1, 1, 1, 1), tf.float32), model.rescale(pixels)])
    noise_off = DiscretizedLogisticMixture.from_params(decoded["params"]).log_prob(pixels).numpy()
    v, u = decoded["v"].numpy(), decoded["u"].numpy()  # [z_nodes, 4, 4, 1], [z_nodes, 4, 4, channels]
    eps = np.arange(-8.0, 8.0 + eps_step / 2, eps_step)
    eps_weights = np.exp(-0.5 * eps ** 2) / math.sqrt(2 * math.pi) * eps_step
    noisy_probability = np.zeros(noise_off.shape, np.float64)
    for chunk in np.array_split(np.arange(len(eps)), max(1, len(eps) // 200)):
        noisy_v = v[None] * (1.0 + sigma * eps[chunk].reshape(-1, 1, 1, 1, 1))  # [chunk, z_nodes, 4, 4, 1]
        params = model.mixture_params(tf.constant(noisy_v.reshape((-1,) + v.shape[1:]), tf.float32),
                                      tf.constant(np.tile(u, (len(chunk), 1, 1, 1))), training=False)  # no noise
        log_prob = DiscretizedLogisticMixture.from_params(params).log_prob(tf.tile(pixels, [len(chunk), 1, 1, 1]))
        log_prob = log_prob.numpy().astype(np.float64).reshape((len(chunk),) + noise_off.shape)
        noisy_probability += np.einsum("e,ezhw->zhw", eps_weights[chunk], np.exp(log_prob))

    def marginal(log_conditional):  # log sum_a w_a exp(log p(x | z_a))
        top = log_conditional.max()
        return top + math.log(np.sum(z_weights * np.exp(log_conditional - top)))

    return marginal(noise_off.astype(np.float64).sum((1, 2))), marginal(np.log(noisy_probability).sum((1, 2)))


def test_the_bounds_approach_the_exact_marginals_from_below_as_samples_grow():
    model = sharpened_exact_case_model()
    image = images(1, size=4, seed=5)[0]
    exact = exact_log_likelihoods(model, image, 60, 0.01)
    np.testing.assert_allclose(exact, exact_log_likelihoods(model, image, 90, 0.005), atol=1e-4)  # converged
    to_bpd = 1.0 / (EXACT_CASE.dims_per_image * math.log(2.0))
    exact_off, exact_noisy = -exact[0] * to_bpd, -exact[1] * to_bpd  # bits/dim, as the bounds report them

    replicas = 300  # rows of one batch: each row draws its own z samples and noise, so rows are replicates
    batch = np.repeat(image[None], replicas, 0)

    def means(z_samples, noise_samples):
        result = LikelihoodBounds(model, z_samples, noise_samples)(batch)
        return {name: (float(np.mean(result[name])), float(np.std(result[name]) / math.sqrt(replicas)))
                for name in ("iwae_bpd", "noise_marginal_bpd")}

    by_k = [means(k, 1)["iwae_bpd"] for k in (1, 4, 16, 64)]
    by_s = [means(1, s)["noise_marginal_bpd"] for s in (1, 4, 16, 64)]
    for curve, exact_value in ((by_k, exact_off), (by_s, exact_noisy)):
        values = [mean for mean, _ in curve]
        assert all(later < earlier for earlier, later in zip(values, values[1:]))  # tighter with more samples
        assert all(mean > exact_value - 3 * error for mean, error in curve)  # bounds: never below in expectation
    assert by_k[0][0] - exact_off > 0.003 and by_s[0][0] - exact_noisy > 0.2  # the gaps being closed are real
    replicas, batch = 60, batch[:60]
    tight = means(128, 128)
    for name, exact_value, start in (("iwae_bpd", exact_off, by_k[0][0]),
                                     ("noise_marginal_bpd", exact_noisy, by_s[0][0])):
        mean, error = tight[name]
        assert exact_value - 3 * error < mean < exact_value + 0.25 * (start - exact_value)


def test_bounds_are_deterministic_and_seeds_give_new_draws():
    model = HybridVAE(TINY, bottleneck="gaussian_dropout", dropout_rate=0.3, seed=2)
    batch = images(4)
    first, again = LikelihoodBounds(model, 3, 2)(batch), LikelihoodBounds(model, 3, 2)(batch)
    other = LikelihoodBounds(model, 3, 2, seed=1)(batch)
    for name in BOUND_NAMES:
        np.testing.assert_array_equal(first[name], again[name])
    np.testing.assert_array_equal(other["kl_bpd"], first["kl_bpd"])  # analytic
    for name in ("elbo_bpd", "iwae_bpd", "noise_marginal_bpd"):  # another seed: other z samples and noise
        assert not np.allclose(other[name], first[name])
    assert int(model.bottleneck_layer.noise_calls.numpy()) == 0  # the training counter was left alone


def test_without_a_bottleneck_the_noise_marginal_bound_is_the_iwae_bound():
    model = HybridVAE(TINY, bottleneck="none", seed=4)
    result = LikelihoodBounds(model, 2, 8)(images(3))
    np.testing.assert_array_equal(result["noise_marginal_bpd"], result["iwae_bpd"])


@pytest.fixture(scope="module")
def dropout_model():
    """One model for the checks that refuse arguments before the model is used (building one costs seconds)."""
    return HybridVAE(TINY, bottleneck="gaussian_dropout", dropout_rate=0.3, seed=2)


@pytest.mark.parametrize("name, value", [("z_samples", 0), ("z_samples", -3), ("z_samples", 2.5),
                                         ("z_samples", True), ("z_samples", 10 ** 6), ("noise_samples", 0),
                                         ("noise_samples", "4"), ("noise_samples", 1.0)])
def test_bad_sample_counts_are_refused_naming_the_argument(dropout_model, name, value):
    counts = {"z_samples": 2, "noise_samples": 2, name: value}
    with pytest.raises(ValueError, match=f"`{name}`"):
        LikelihoodBounds(dropout_model, **counts)


def test_noise_draws_that_do_not_fit_in_memory_are_refused_before_anything_runs():
    check_memory(TINY, batch_size=32, noise_samples=64, available=2 ** 30)  # 8x8, small: fits
    with pytest.raises(ValueError, match=r"`noise_samples`=4096 .* use noise_samples <= \d+"):
        check_memory(TINY, batch_size=32, noise_samples=4096, available=2 ** 30)
    with pytest.raises(ValueError, match="`noise_samples`"):
        evaluate_bounds(HybridVAE(TINY, bottleneck="none", seed=0), images(2), 1, 10 ** 9, batch_size=2)


def test_two_replicas_give_what_one_replica_gives(two_replicas):
    reference = HybridVAE(TINY, bottleneck="variational", beta=0.5, seed=6)
    batch = images(8)
    single = evaluate_bounds(reference, batch, 3, 4, batch_size=4)
    with two_replicas.scope():
        replicated = HybridVAE(TINY, bottleneck="variational", beta=0.5, seed=6)
    replicated.set_weights(reference.get_weights())
    double = evaluate_bounds(replicated, batch, 3, 4, batch_size=4, strategy=two_replicas)
    for name in BOUND_NAMES:
        np.testing.assert_allclose(double[name], single[name], rtol=1e-6, atol=0)


def test_the_command_keeps_the_bounds_and_recomputes_them_after_more_training(tmp_path, shapes_data_dir):
    model_dir = str(tmp_path / "run")
    settings = dict(export=False, image_summaries=0, schedule_epochs=2)
    train(tiny_run(model_dir, shapes_data_dir, **settings), write=lambda text, flush=False: None)
    command = [sys.executable, "-m", "trainers.evaluate", f"--model_dir={model_dir}", "--z_samples=2",
               "--noise_samples=3", "--batch_size=8"]
    first = subprocess.run(command, cwd=REPO, env=environment(), capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    (entry,) = files.read_json(os.path.join(model_dir, "bounds.json"))["entries"]
    assert entry["setting"] == {"split": "test", "z_samples": 2, "noise_samples": 3, "seed": 0, "images": 128,
                                "batch_size": 8}
    assert entry["step"] == 6 and entry["run_seed"] == 0
    per_image = np.genfromtxt(os.path.join(model_dir, entry["per_image_csv"]), delimiter=",", names=True)
    assert len(per_image) == 128
    for name in BOUND_NAMES:
        assert entry["means"][name]["mean"] == pytest.approx(per_image[name].mean())
    # The paper's ELBO here is the run's own test evaluation (the same z draws: the same batch size).
    results = files.read_json(os.path.join(model_dir, "results.json"))
    assert entry["means"]["elbo_bpd"]["mean"] == pytest.approx(results["test_elbo_bpd"], rel=1e-5)
    assert entry["means"]["kl_bpd"]["mean"] == pytest.approx(results["test_kl_bpd"], rel=1e-4)

    again = subprocess.run(command, cwd=REPO, env=environment(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "Kept in" in again.stdout and "Evaluating" not in again.stdout

    train(tiny_run(model_dir, shapes_data_dir, epochs=3, **settings),  # trained further
          write=lambda text, flush=False: None)
    after = subprocess.run(command, cwd=REPO, env=environment(), capture_output=True, text=True, timeout=300)
    assert after.returncode == 0 and "Evaluating 128 test images" in after.stdout, after.stderr[-2000:]
    (entry,) = files.read_json(os.path.join(model_dir, "bounds.json"))["entries"]
    assert entry["step"] == 9

    bad = subprocess.run([*command[:4], "--z_samples=0"], cwd=REPO, env=environment(), capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 1 and "ERROR: Flag `--z_samples` must be an integer >= 1" in bad.stderr
