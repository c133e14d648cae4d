"""Polyak averaging: Keras' moving average of the weights, evaluated and exported but never trained on."""

import keras
import numpy as np
import pytest

from gd_bottleneck import HybridVAE, data
from gd_bottleneck.training import RunConfig, train
from gd_bottleneck.training.checkpoints import load_trained_model
from gd_bottleneck.training.optimizer import PolyakAdam, averaged_weights
from tests.tiny_models import TINY, TINY_OVERRIDES, tiny_run


def test_the_average_follows_its_formula_and_training_uses_the_raw_weights():
    decay = 0.6
    weight = keras.Variable(np.array([1.0, -2.0], np.float32))
    optimizer = PolyakAdam(0.1, use_ema=True, ema_momentum=decay)
    optimizer.build([weight])
    raw, average = [], None
    for gradient in ([1.0, 0.5], [-2.0, 0.1], [0.3, -1.0], [0.2, 0.2]):
        optimizer.apply_gradients([(np.array(gradient, np.float32), weight)])
        raw.append(weight.numpy().astype(np.float64))
        average = raw[-1] if average is None else decay * average + (1 - decay) * raw[-1]
    optimizer.finalize_variable_values([weight])  # what fit() calls at its end: must not touch the weights
    np.testing.assert_array_equal(weight.numpy(), raw[-1].astype(np.float32))
    optimizer.assign_averages([weight])
    np.testing.assert_allclose(weight.numpy(), average, rtol=1e-6)


def test_averaged_weights_swaps_the_average_in_and_restores_the_weights_bit_for_bit():
    model = HybridVAE(TINY, seed=3)
    model.compile(optimizer=PolyakAdam(1e-2, use_ema=True, ema_momentum=0.9))
    images = np.random.default_rng(0).integers(0, 256, [8, 8, 8, 3]).astype(np.uint8)
    model.fit(images, batch_size=4, epochs=1, shuffle=False, verbose=0)
    trained = [w.numpy() for w in model.trainable_variables]
    with averaged_weights(model):
        averaged = [w.numpy() for w in model.trainable_variables]
        inside = model.elbo(images)["elbo_bpd"].numpy()
    assert any(not np.array_equal(a, b) for a, b in zip(trained, averaged))
    for before, after in zip(trained, model.trainable_variables):
        np.testing.assert_array_equal(before, after.numpy())
    assert not np.array_equal(inside, model.elbo(images)["elbo_bpd"].numpy())


def test_a_run_evaluates_and_loads_the_averaged_weights(tmp_path, shapes_data_dir):
    """With weight norm too (PixelCNN++'s recipe): the test ELBO of results.json is the averaged model's, and
    load_trained_model (export, sampling) gives that model."""
    config = tiny_run(tmp_path / "run", shapes_data_dir, polyak_decay=0.5, epochs=1, image_summaries=0,
                      export=False, model_overrides={**TINY_OVERRIDES, "weight_norm": True})
    results = train(config, write=lambda text, flush=False: None)
    model, _, _ = load_trained_model(str(tmp_path / "run"))
    model.compile()
    test = data.load_images(config.dataset, "test", config.image_size, config.data_dir)
    loaded = model.evaluate(data.evaluation_batches(test, config.batch_size), return_dict=True, verbose=0)
    assert loaded["elbo_bpd"] == pytest.approx(results["test_elbo_bpd"], rel=1e-6)


def test_a_decay_outside_0_1_is_refused_with_the_setting_named(tmp_path):
    with pytest.raises(ValueError, match="polyak_decay"):
        RunConfig(model_dir=str(tmp_path), dropout_rate=0.1, polyak_decay=1.0)
