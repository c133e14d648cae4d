"""Training runs in-process: settings validation, schedules, a whole tiny run's outputs, NaN handling."""

import dataclasses
import glob
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gd_bottleneck import HybridVAE
from gd_bottleneck.training import RunConfig, TrainingDiverged, train
from gd_bottleneck.training.callbacks import read_curve
from gd_bottleneck.training.optimizer import learning_rate_schedule
from gd_bottleneck.training.run import fit_segments
from tests.cli_runs import environment
from tests.tiny_models import TINY, tiny_run


@pytest.mark.parametrize("changes, message", [
    ({"dropout_rate": 1.0}, r"`dropout_rate` must be in the range \[0, 1\)"),
    ({"dropout_rate": None}, "`dropout_rate` is required"),
    ({"bottleneck": "variational"}, "`beta` is required"),
    ({"bottleneck": "variational", "beta": -1.0}, "`beta` must be a finite number >= 0"),
    ({"batch_size": 0}, "`batch_size` must be an integer >= 1"),
    ({"learning_rate": 0.0}, "`learning_rate` must be a finite number > 0"),
    ({"adam_beta2": 1.0}, "`adam_beta2` must be in the range"),
    ({"dataset": "imagenet"}, "`dataset` must be one of"),
    ({"strategy": "tpu"}, "`strategy` must be one of"),
    ({"model_preset": "huge"}, "`model_preset` must be one of"),
    ({"model_overrides": {"pixelcnn_filters": 0}}, "`pixelcnn_filters` must be an integer >= 1"),
    ({"model_overrides": {"width": 3}}, "width"),
    ({"image_size": 12}, "image_size"),
    ({"seed": -1}, "`seed`"),
    ({"intra_op_threads": -1}, "`intra_op_threads` must be an integer >= 0"),
    ({"model_dir": ""}, "`model_dir`"),
])
def test_bad_settings_are_refused_with_the_field_named(changes, message):
    valid = tiny_run("/tmp/unused", None)
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(valid, **changes)


def test_a_resume_may_move_files_but_not_change_what_is_trained():
    saved = tiny_run("runs/a", None).to_dict()
    tiny_run("runs/a", "/data", checkpoint_every=7, strategy="mirrored", intra_op_threads=1).check_resumable_from(saved)
    with pytest.raises(ValueError, match="dropout_rate: 0.1 -> 0.2"):
        tiny_run("runs/a", None, dropout_rate=0.2).check_resumable_from(saved)
    with pytest.raises(ValueError, match="epochs: 2 -> 3"):  # the schedule depends on the length of the run
        tiny_run("runs/a", None, epochs=3).check_resumable_from(saved)
    # ... unless it anneals over a fixed horizon: then a run can be extended (Hyperband's promotions)
    fixed = tiny_run("runs/a", None, schedule_epochs=9).to_dict()
    tiny_run("runs/a", None, epochs=5, schedule_epochs=9).check_resumable_from(fixed)
    with pytest.raises(ValueError, match="schedule_epochs: 9 -> 8"):
        tiny_run("runs/a", None, epochs=5, schedule_epochs=8).check_resumable_from(fixed)
    with pytest.raises(ValueError, match="`schedule_epochs` must be an integer >= 1"):
        tiny_run("runs/a", None, schedule_epochs=0)
    # A run saved without schedule_epochs annealed over its own epochs: naming that horizon extends it.
    tiny_run("runs/a", None, epochs=5, schedule_epochs=2).check_resumable_from(saved)
    with pytest.raises(ValueError, match="epochs: 2 -> 5"):
        tiny_run("runs/a", None, epochs=5, schedule_epochs=3).check_resumable_from(saved)


@pytest.mark.parametrize("schedule", ["exponential", "linear", "cosine"])
def test_learning_rate_anneals_from_the_first_to_the_final_value(schedule):
    config = tiny_run("x", None, lr_schedule=schedule, learning_rate=1e-4, final_learning_rate=4e-6)
    rate = learning_rate_schedule(config, 1000)
    values = np.array([float(rate(step)) for step in (0, 250, 500, 1000)])
    np.testing.assert_allclose(values[[0, -1]], [1e-4, 4e-6], rtol=1e-5)
    assert np.all(np.diff(values) < 0)
    if schedule == "exponential":  # geometric: the midpoint is the geometric mean
        assert values[2] == pytest.approx(np.sqrt(1e-4 * 4e-6), rel=1e-5)


@pytest.mark.parametrize("schedule", ["exponential", "linear", "cosine"])
def test_after_its_annealing_the_learning_rate_holds_at_the_final_value(schedule):
    config = tiny_run("x", None, lr_schedule=schedule, learning_rate=1e-4, final_learning_rate=4e-6)
    rate = learning_rate_schedule(config, 1000)
    assert [float(rate(step)) for step in (1001, 1500, 10**6)] == [float(rate(1000))] * 3
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(rate))
    steps = np.array([0, 1, 499, 1000, 2000])
    np.testing.assert_array_equal([float(restored(step)) for step in steps], [float(rate(step)) for step in steps])


def test_holding_the_exponential_rate_leaves_the_annealing_bit_for_bit():
    config = tiny_run("x", None, lr_schedule="exponential", learning_rate=1e-3, final_learning_rate=2e-5)
    held = learning_rate_schedule(config, 7116)
    plain = keras.optimizers.schedules.ExponentialDecay(1e-3, 7116, 2e-5 / 1e-3)
    steps = tf.constant(np.arange(0, 7117, 7), dtype=tf.int64)
    np.testing.assert_array_equal(tf.map_fn(held, steps, fn_output_signature=tf.float32),
                                  tf.map_fn(plain, steps, fn_output_signature=tf.float32))


def test_an_extended_run_is_the_longer_run_bit_for_bit(tmp_path, shapes_data_dir):
    """A finished run continued for another epoch at its final rate (tuning.extend) ends with the weights of one
    run trained for all three epochs with the same annealing."""
    quiet = lambda text, flush=False: None
    settings = dict(export=False, image_summaries=0, curve_points=2)
    train(tiny_run(tmp_path / "extended", shapes_data_dir, **settings), write=quiet)
    extended = train(tiny_run(tmp_path / "extended", shapes_data_dir, epochs=3, schedule_epochs=2,
                              **{**settings, "curve_points": 3}), write=quiet)
    longer = train(tiny_run(tmp_path / "longer", shapes_data_dir, epochs=3, schedule_epochs=2, **settings),
                   write=quiet)
    assert extended["steps"] == longer["steps"] == 9
    assert extended["test_elbo_bpd"] == longer["test_elbo_bpd"]
    assert [point["step"] for point in read_curve(str(tmp_path / "extended" / "curve.jsonl"))] == [3, 6, 9]
    for name, value in checkpoint_tensors(tmp_path / "longer").items():
        np.testing.assert_array_equal(checkpoint_tensors(tmp_path / "extended")[name], value, err_msg=name)


def checkpoint_tensors(model_dir):
    reader = tf.train.load_checkpoint(str(model_dir / "checkpoints"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


@pytest.mark.parametrize("start, expected", [
    (0, [(0, 3, 5, 0)]),
    (5, [(1, 3, 5, 5)]),
    (7, [(1, 2, 3, 7), (2, 3, 5, 10)]),
    (14, [(2, 3, 1, 14)]),
    (15, []),
])
def test_fit_segments_finish_a_run_from_any_step(start, expected):
    assert list(fit_segments(start, 5, 3)) == expected


def test_a_tiny_run_writes_results_checkpoints_tensorboard_and_an_export(tmp_path, shapes_data_dir):
    lines = []
    config = tiny_run(tmp_path / "run", shapes_data_dir, validation_examples=16, curve_points=2)
    results = train(config, write=lambda text, flush=False: lines.append(text))
    curve = read_curve(str(tmp_path / "run" / "curve.jsonl"))  # held-out figures at steps 3 and 6 ...
    assert [point["step"] for point in curve] == [3, 6]
    assert curve[-1]["elbo_bpd"] == pytest.approx(results["validation_elbo_bpd"], rel=1e-5)  # ... the last = final
    assert curve[-1]["kl_bpd"] == pytest.approx(results["validation_kl_bpd"], rel=1e-4, abs=1e-7)
    assert results["steps"] == results["total_steps"] == 6
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["config"] == config.to_dict() and saved["steps"] == 6
    for name in ("test_elbo_bpd", "test_kl_bpd", "test_recon_bpd", "test_mi_bound_bpd", "wall_time_s"):
        assert np.isfinite(saved[name]), name
    assert saved["test_elbo_bpd"] == pytest.approx(saved["test_recon_bpd"] + saved["test_kl_bpd"], rel=1e-5)
    assert any(line.startswith("step 6/6") and "images/s" in line and "elbo_bpd" in line for line in lines)
    progress = [line for line in lines if line.startswith("step ")]
    assert "eta 00:00" in progress[-1]
    assert all(re.search(r"elapsed \d\d:\d\d  eta \d\d:\d\d", line) for line in progress)

    checkpoints = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "run/checkpoints/ckpt-*.index")))
    assert checkpoints == ["ckpt-4.index", "ckpt-6.index"]  # every 2 steps, the newest 2 kept

    # The export's test-mode ELBO over the test split reproduces the evaluation in results.json.
    exported = tf.saved_model.load(saved["export"])
    assert saved["export"].endswith("export/1")
    from gd_bottleneck import data
    test_images = data.load_images("shapes_tiny", "test", 8, data_dir=shapes_data_dir)
    # Same batches as the evaluation (the test-mode z draw is keyed by the batch size).
    elbo = np.concatenate([exported.signatures["elbo"](images=tf.constant(test_images[i:i + 8]))["elbo_bpd"]
                           for i in range(0, len(test_images), 8)])
    assert elbo.mean() == pytest.approx(saved["test_elbo_bpd"], rel=1e-5)
    # validation_examples: the last 16 training images were held out and evaluated the same way.
    held_out = data.load_images("shapes_tiny", "train", 8, data_dir=shapes_data_dir)[-16:]
    elbo = np.concatenate([exported.signatures["elbo"](images=tf.constant(held_out[i:i + 8]))["elbo_bpd"]
                           for i in (0, 8)])
    assert saved["validation_images"] == 16 and elbo.mean() == pytest.approx(saved["validation_elbo_bpd"], rel=1e-5)

    scalars, images = EventAccumulator(str(tmp_path / "run/tensorboard/train")), None
    scalars.Reload()
    tags = set(scalars.Tags()["scalars"]) | set(scalars.Tags()["tensors"])
    for name in ("epoch_elbo_bpd", "epoch_kl_bpd", "epoch_learning_rate", "batch_elbo_bpd"):
        assert name in tags, (name, tags)
    images = EventAccumulator(str(tmp_path / "run/tensorboard/images"))
    images.Reload()
    assert {"data", "reconstructions", "samples"} <= set(images.Tags()["tensors"]) | set(images.Tags()["images"])


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, shapes_data_dir,
                                                                              monkeypatch):
    objective = HybridVAE.objective

    def poisoned(self, terms):  # the loss of the 4th step (optimizer.iterations == 3) is NaN
        poison = tf.where(self.optimizer.iterations >= 3, np.nan, 1.0) if self.optimizer else 1.0
        return objective(self, terms) * poison

    monkeypatch.setattr(HybridVAE, "objective", poisoned)
    config = tiny_run(tmp_path / "run", shapes_data_dir, checkpoint_every=1, keep_checkpoints=10, image_summaries=0)
    with pytest.raises(TrainingDiverged, match="NaN/inf at step 4") as stop:
        train(config, write=lambda text, flush=False: None)
    assert "ckpt-3" in str(stop.value)
    assert not (tmp_path / "run" / "results.json").exists()
    reader = tf.train.load_checkpoint(str(tmp_path / "run/checkpoints/ckpt-3"))
    assert tf.train.latest_checkpoint(str(tmp_path / "run/checkpoints")).endswith("ckpt-3")
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.all(np.isfinite(value)), name


def test_the_thread_setting_is_refused_once_tensorflow_runs_with_another():
    # Process-wide: TensorFlow fixes its thread pools when it runs its first op, as it has in this test process.
    from gd_bottleneck.training import strategies

    tf.constant(1.0) + 1.0
    current = tf.config.threading.get_intra_op_parallelism_threads()
    strategies.set_intra_op_threads(0)  # TensorFlow's default: nothing to set
    if current:
        strategies.set_intra_op_threads(current)  # what the process already uses
    with pytest.raises(RuntimeError, match="intra_op_threads=7: TensorFlow has already run ops"):
        strategies.set_intra_op_threads(7)


def test_the_thread_setting_takes_effect_in_a_fresh_process():
    script = ("from gd_bottleneck.training import strategies; strategies.set_intra_op_threads(1); "
              "import tensorflow as tf; tf.constant(1.0) + 1.0; "
              "print(tf.config.threading.get_intra_op_parallelism_threads())")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment())
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1"]


def test_run_config_round_trips_through_json():
    config = tiny_run("runs/x", "/data", bottleneck="variational", beta=0.5, dropout_rate=None)
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="Unknown RunConfig fields"):
        RunConfig.from_dict({**config.to_dict(), "typo": 1})
    assert dataclasses.replace(config, epochs=4).epochs == 4


def test_the_training_checkpoint_holds_every_model_variable_and_the_optimizer_state(tmp_path):
    import keras

    from gd_bottleneck.training.checkpoints import model_variables, restore, training_checkpoint

    def make(seed):
        model = HybridVAE(TINY, bottleneck="gaussian_dropout", dropout_rate=0.1, seed=seed)
        optimizer = keras.optimizers.Adam(1e-3)
        optimizer.build(model.trainable_variables)
        return model, optimizer

    model, optimizer = make(1)
    rng = np.random.default_rng(0)
    for variable in model.variables + optimizer.variables:  # every value distinct from a fresh model's
        variable.assign(rng.integers(1, 9, variable.shape) if "int" in variable.dtype
                        else rng.normal(size=variable.shape).astype(variable.dtype))
    path = training_checkpoint(model, optimizer).save(str(tmp_path / "ckpt"))
    fresh, fresh_optimizer = make(2)
    restore(training_checkpoint(fresh, fresh_optimizer), path)
    assert len(fresh.variables) > 100  # the gated resnets and ResNet blocks (held in lists) included
    for expected, actual in zip(model.variables + optimizer.variables, fresh.variables + fresh_optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(actual), keras.ops.convert_to_numpy(expected),
                                      err_msg=expected.path)
    # The model alone (as load_trained_model restores it), in a model Keras named differently (hybrid_vae_<n>).
    weights_only, _ = make(3)
    assert weights_only.name != model.name
    tf.train.Checkpoint(model_variables=model_variables(weights_only)).restore(path).expect_partial() \
        .assert_existing_objects_matched()
    for expected, actual in zip(model.variables, weights_only.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(actual), keras.ops.convert_to_numpy(expected),
                                      err_msg=expected.path)


def test_validation_examples_are_the_last_training_images_and_must_leave_some_to_train_on():
    from gd_bottleneck.training.run import _hold_out

    images = np.arange(10)[:, None]
    train_part, validation = _hold_out(images, 3)
    np.testing.assert_array_equal(validation[:, 0], [7, 8, 9])
    np.testing.assert_array_equal(train_part[:, 0], np.arange(7))
    assert _hold_out(images, 0)[1] is None
    with pytest.raises(ValueError, match=r"`validation_examples` must be in \[0, 10\)"):
        _hold_out(images, 10)


def test_durations_read_as_clock_times():
    from gd_bottleneck.training.callbacks import clock
    assert [clock(0), clock(59.6), clock(61), clock(3600 + 62)] == ["00:00", "01:00", "01:01", "1:01:02"]


@pytest.mark.parametrize("bottleneck, strength", [("gaussian_dropout", {"dropout_rate": 0.1}),
                                                  ("variational", {"beta": 0.1})])
def test_a_diverging_run_stops_with_the_guards_message_for_either_bottleneck(tmp_path, shapes_data_dir, bottleneck,
                                                                            strength):
    """A learning rate of 1e3 blows the weights up within a few steps: every metric of the step (the MI bound
    included) must let the guard see the NaN loss, and the message must say that no checkpoint was written."""
    settings = {"dropout_rate": None, **strength}
    config = tiny_run(tmp_path / "run", shapes_data_dir, bottleneck=bottleneck, **settings, learning_rate=1e3,
                      checkpoint_every=100, image_summaries=0, export=False)
    with pytest.raises(TrainingDiverged, match="NaN/inf at step") as stop:
        train(config, write=lambda text, flush=False: None)
    assert "No checkpoint was written before it" in str(stop.value) and "new --model_dir" in str(stop.value)
    assert "None" not in str(stop.value)
