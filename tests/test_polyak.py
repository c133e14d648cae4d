"""Polyak averaging: Keras' moving average of the weights, evaluated and exported but never trained on."""

import keras
import numpy as np
import pytest

from gd_bottleneck import HybridVAE, data
from gd_bottleneck.training import RunConfig, train
from gd_bottleneck.training.checkpoints import load_trained_model
from gd_bottleneck.training.optimizer import PolyakAdam, averaged_weights
from tests.tiny_models import RUN_MODEL, RUN_OVERRIDES, tiny_run


def test_the_average_follows_its_formula_and_training_uses_the_raw_weights():
    decay = 0.25  # below the warm-up's (1 + t) / (10 + t) from step 2 on: both branches of the minimum run
    weight = keras.Variable(np.array([1.0, -2.0], np.float32))
    optimizer = PolyakAdam(0.1, use_ema=True, ema_momentum=decay)
    optimizer.build([weight])
    raw, average = [], None
    for gradient in ([1.0, 0.5], [-2.0, 0.1], [0.3, -1.0], [0.2, 0.2]):
        optimizer.apply_gradients([(np.array(gradient, np.float32), weight)])
        raw.append(weight.numpy().astype(np.float64))
        step = len(raw) - 1  # the optimizer's iterations when it averaged
        warm = min(decay, (1 + step) / (10 + step))  # tf.train.ExponentialMovingAverage's num_updates warm-up
        average = raw[-1] if average is None else warm * average + (1 - warm) * raw[-1]
    optimizer.finalize_variable_values([weight])  # what fit() calls at its end: must not touch the weights
    np.testing.assert_array_equal(weight.numpy(), raw[-1].astype(np.float32))
    optimizer.assign_averages([weight])
    np.testing.assert_allclose(weight.numpy(), average, rtol=1e-6)


def test_averaged_weights_swaps_the_average_in_and_restores_the_weights_bit_for_bit():
    model = HybridVAE(RUN_MODEL, seed=3)  # averaging does not depend on the structure: the run tests' model
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
                      export=False, model_overrides={**RUN_OVERRIDES, "weight_norm": True})
    results = train(config, write=lambda text, flush=False: None)
    model, _, _ = load_trained_model(str(tmp_path / "run"))
    model.compile()
    test = data.load_images(config.dataset, "test", config.image_size, config.data_dir)
    loaded = model.evaluate(data.evaluation_batches(test, config.batch_size), return_dict=True, verbose=0)
    assert loaded["elbo_bpd"] == pytest.approx(results["test_elbo_bpd"], rel=1e-6)


def test_a_decay_outside_0_1_is_refused_with_the_setting_named(tmp_path):
    with pytest.raises(ValueError, match="polyak_decay"):
        RunConfig(model_dir=str(tmp_path), dropout_rate=0.1, polyak_decay=1.0)


def test_the_fused_adam_update_equals_keras_adam_step_by_step():
    """Same slots, same formula: TensorFlow's ResourceApplyAdam against Keras' op-by-op Adam, 5 steps of random
    gradients on variables of several shapes, under a learning-rate schedule. Not bit for bit: the kernel rounds
    1 - beta in float32, Keras in float64 (0.9 -> 0.100000024 against 0.1), a 2e-7 relative difference."""
    from gd_bottleneck.training.optimizer import FusedAdam
    rng = np.random.default_rng(4)
    shapes = [(3,), (4, 5), (2, 2, 3, 6)]
    initial = [rng.normal(size=shape).astype(np.float32) for shape in shapes]
    schedule = lambda: keras.optimizers.schedules.ExponentialDecay(1e-2, 10, 0.5)  # noqa: E731
    results = []
    for optimizer in (keras.optimizers.Adam(schedule(), epsilon=1e-7), FusedAdam(schedule(), epsilon=1e-7)):
        variables = [keras.Variable(value) for value in initial]
        optimizer.build(variables)
        steps = np.random.default_rng(5)
        for _ in range(5):
            optimizer.apply_gradients([(steps.normal(size=v.shape).astype(np.float32), v) for v in variables])
        results.append([v.numpy() for v in variables] + [m.numpy() for m in optimizer.variables[2:]])
    for keras_value, fused_value in zip(*results):
        np.testing.assert_allclose(fused_value, keras_value, rtol=1e-5, atol=1e-6)
