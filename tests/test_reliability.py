"""Reliability: seeds that fix a run, faults a run survives (damaged checkpoints, killed saves, full disks), finished
runs that finish, and user errors reported as one line instead of a traceback.

A full disk is simulated with ``RLIMIT_FSIZE`` (writes past the limit fail with EFBIG inside TensorFlow's own file
writers, exactly where ENOSPC would), so the failure is real, not a patched function.
"""

import fcntl
import glob
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from gd_bottleneck import HybridVAE, data
from gd_bottleneck.data import pipeline
from gd_bottleneck.errors import (
    CheckpointError,
    CheckpointMismatch,
    DamagedFile,
    DatasetUnavailable,
    RunInUse,
    SettingsError,
)
from gd_bottleneck.training import callbacks, checkpoints, files, train
from gd_bottleneck.training.run import build_model
from gd_bottleneck.training.run_config import RunConfig
from tests.faults import file_size_limit
from tests.tiny_models import RUN_FLAGS, TINY, tiny_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def quiet(text, flush=False):
    del text, flush


def collect(lines):
    return lambda text, flush=False: lines.append(text)


def run_settings(model_dir, data_dir, **changes):
    """4 deterministic steps, a checkpoint after every one, no export and no image grids (fast)."""
    return tiny_run(model_dir, data_dir, **{**dict(steps_per_epoch=2, epochs=2, checkpoint_every=1,
                                                   keep_checkpoints=10, image_summaries=0, export=False,
                                                   deterministic=True), **changes})


def saved_tensors(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


def assert_same_tensors(actual, expected):
    assert actual.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)


# --- seeds ---

WEIGHT_HASH = """
import hashlib, sys
from gd_bottleneck import HybridVAE
from tests.tiny_models import TINY
model = HybridVAE(TINY, bottleneck="gaussian_dropout", dropout_rate=0.1, seed=int(sys.argv[1]))
digest = hashlib.sha256()
for variable in model.variables:
    digest.update(variable.numpy().tobytes())
print(digest.hexdigest())
"""


def weight_hash(seed):
    digest = hashlib.sha256()
    for variable in HybridVAE(TINY, bottleneck="gaussian_dropout", dropout_rate=0.1, seed=seed).variables:
        digest.update(variable.numpy().tobytes())
    return digest.hexdigest()


def test_a_seed_fixes_the_initial_weights_in_every_process():
    other = subprocess.run([sys.executable, "-c", WEIGHT_HASH, "7"], cwd=REPO, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": REPO}, timeout=300)
    assert other.returncode == 0, other.stderr[-2000:]
    here = weight_hash(7)  # this process has built many models before: the global random state differs
    assert other.stdout.strip().splitlines()[-1] == here
    assert weight_hash(8) != here


def test_building_a_seeded_model_leaves_the_callers_random_state_alone():
    import random
    random.seed(123)
    expected = random.random()
    random.seed(123)
    HybridVAE(TINY, bottleneck="none", seed=3)
    assert random.random() == expected


# --- damaged, missing and half-written checkpoints; finished runs ---

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, shapes_data_dir):
    """A finished 2-step run (schedule over 4 steps, so it can be extended): ``(config, folder, results)``.

    Tests work on copies (:func:`copy_of`), so each starts from the same finished run.
    """
    folder = tmp_path_factory.mktemp("finished") / "run"
    config = run_settings(folder, shapes_data_dir, epochs=1, schedule_epochs=2)
    began = time.time()
    results = train(config, write=quiet)
    return config, folder, results, time.time() - began


def copy_of(finished_run, tmp_path):
    config, folder, results, _ = finished_run
    shutil.copytree(folder, tmp_path / "run")
    return dataclass_replace(config, model_dir=str(tmp_path / "run")), tmp_path / "run" / "checkpoints", results


def test_checkpoints_that_do_not_fit_edited_settings_are_a_mismatch_not_damage(finished_run, tmp_path):
    config, checkpoint_dir, _ = copy_of(finished_run, tmp_path)
    before = sorted(os.listdir(checkpoint_dir))
    path = os.path.join(config.model_dir, "run_config.json")
    saved = json.loads(open(path).read())
    saved["model_overrides"] = {**saved["model_overrides"], "mixer_units": saved["model_overrides"].get("mixer_units",
                                                                                                       8) + 3}
    files.write_json_atomically(path, saved)  # hand-edited: the architecture no longer fits the weights
    for attempt in (lambda: checkpoints.load_trained_model(config.model_dir, warn=pytest.fail),
                    # the trainer, given the edited settings
                    lambda: train(RunConfig.from_dict({**saved, "model_dir": config.model_dir}), write=quiet)):
        with pytest.raises(CheckpointMismatch, match=r"ckpt-\d+ is intact but does not fit the model its "
                           r"run_config.json describes .*Restore the run's own run_config.json; nothing was moved"):
            attempt()
        assert sorted(os.listdir(checkpoint_dir)) == before  # nothing quarantined, nothing rewritten


def test_a_model_only_checkpoint_written_with_write_loads_as_a_run(finished_run, tmp_path):
    """What the studies keep per run (run_config.json and a model-only ``Checkpoint.write``, no save_counter and no
    optimizer state) is a run folder that evaluate, sample and the figures can load."""
    folder = finished_run[1]
    model, _, _ = checkpoints.load_trained_model(str(folder))
    kept = tmp_path / "kept"
    (kept / "checkpoints").mkdir(parents=True)
    shutil.copy(folder / "run_config.json", kept / "run_config.json")
    tf.train.Checkpoint(model_variables=checkpoints.model_variables(model)).write(str(kept / "checkpoints" / "ckpt-2"))
    loaded, _, newest = checkpoints.load_trained_model(str(kept), warn=lambda text: pytest.fail(text))
    assert newest.endswith("ckpt-2")
    expected, actual = checkpoints.model_variables(model), checkpoints.model_variables(loaded)
    assert expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_array_equal(actual[name].numpy(), expected[name].numpy(), err_msg=name)


def test_a_damaged_newest_checkpoint_falls_back_and_the_run_ends_as_uninterrupted(finished_run, tmp_path):
    """... and its wall_time_s counts both segments."""
    config, folder, _ = copy_of(finished_run, tmp_path)
    expected = saved_tensors(str(folder / "ckpt-2"))
    data_file = glob.glob(str(folder / "ckpt-2.data-*"))[0]  # the newest data file truncated (a disk error, ...)
    with open(data_file, "r+b") as stream:
        stream.truncate(os.path.getsize(data_file) // 2)
    lines = []
    began = time.time()
    results = train(config, write=collect(lines))
    segment = time.time() - began
    text = "\n".join(lines)
    assert "WARNING: checkpoint" in text and "ckpt-2 is damaged or incomplete" in text
    assert "Resuming at step 1/2" in text
    assert os.path.exists(folder / "damaged" / os.path.basename(data_file))  # kept for inspection, not deleted
    assert results["steps"] == 2
    assert_same_tensors(saved_tensors(str(folder / "ckpt-2")), expected)  # bit for bit (deterministic)
    # wall_time_s adds up the segments: the first up to the checkpoint this one resumed from, then this one.
    earlier = checkpoints.recorded_wall_time(str(folder), "ckpt-1")
    assert 0 < earlier < finished_run[3]
    assert results["wall_time_s"] >= round(earlier + segment, 1) - 0.2


def test_a_missing_newest_checkpoint_and_a_killed_save_leave_the_previous_one_to_resume_from(finished_run, tmp_path):
    config, folder, _ = copy_of(finished_run, tmp_path)
    for path in glob.glob(str(folder / "ckpt-2.*")):  # listed in the index, files gone ...
        os.remove(path)
    os.makedirs(folder / "ckpt-3_temp")  # ... and a save killed half-way, its shards left behind
    (folder / "ckpt-3_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 100)
    model = build_model(config, schedule_steps=4)
    lines = []
    checkpoint = checkpoints.training_checkpoint(model, model.optimizer)
    checkpoints.remove_unfinished_saves(str(folder))
    restored = checkpoints.restore_newest_intact(checkpoint, str(folder), collect(lines))
    assert restored.endswith("ckpt-1"), lines
    assert int(model.optimizer.iterations.numpy()) == 1
    assert "ckpt-2 is damaged or incomplete (NotFoundError" in lines[0]
    assert not os.path.exists(folder / "ckpt-3_temp")
    assert tf.train.latest_checkpoint(str(folder)).endswith("ckpt-1")  # the index now lists the intact ones


def test_rerunning_a_finished_run_reports_it_and_a_run_killed_before_its_results_finishes_them(finished_run,
                                                                                               tmp_path):
    config, folder, first = copy_of(finished_run, tmp_path)
    lines = []
    assert train(config, write=collect(lines)) == first
    assert lines == [f"Run complete (2/2 steps): results in {tmp_path / 'run' / 'results.json'}"]

    os.remove(tmp_path / "run" / "results.json")  # as if killed during the final evaluation
    lines = []
    again = train(config, write=collect(lines))
    assert lines[0] == "Training finished at step 2/2; finishing the evaluation and export."
    assert again["test_elbo_bpd"] == first["test_elbo_bpd"] and again["steps"] == 2
    assert json.loads((tmp_path / "run" / "results.json").read_text())["test_elbo_bpd"] == first["test_elbo_bpd"]


def test_when_every_checkpoint_is_damaged_the_run_stops_instead_of_starting_over(tmp_path, shapes_data_dir):
    config = run_settings(tmp_path / "run", shapes_data_dir)
    folder = tmp_path / "run" / "checkpoints"
    os.makedirs(folder)
    files.write_json_atomically(str(tmp_path / "run" / "run_config.json"), config.to_dict())  # the run's settings
    (folder / "ckpt-2.index").write_bytes(b"not a checkpoint")
    (folder / "ckpt-2.data-00000-of-00001").write_bytes(b"\1" * 64)
    with pytest.raises(CheckpointError, match=r"No intact checkpoint in .*ckpt-2.*Move the checkpoints folder away"):
        train(config, write=quiet)
    assert sorted(os.listdir(folder)) == ["ckpt-2.data-00000-of-00001", "ckpt-2.index"]  # nothing moved or deleted


def test_a_full_disk_during_a_checkpoint_is_a_clear_error_and_keeps_the_previous_one(tmp_path):
    model = HybridVAE(TINY, bottleneck="gaussian_dropout", dropout_rate=0.1, seed=0)
    model.compile(optimizer="adam")
    model.optimizer.build(model.trainable_variables)
    checkpoint = checkpoints.training_checkpoint(model, model.optimizer)
    folder = str(tmp_path / "checkpoints")
    manager = tf.train.CheckpointManager(checkpoint, folder, max_to_keep=3)
    guard = callbacks.CheckpointGuard(manager, every=1)
    guard.set_model(model)
    first = guard.save()
    model.optimizer.iterations.assign(1)
    with file_size_limit(2048), pytest.raises(CheckpointError, match=r"step 1 .*disk full.*ckpt-0"):
        guard.save()
    assert tf.train.latest_checkpoint(folder) == first
    assert sorted(os.listdir(folder)) == ["checkpoint", "ckpt-0.data-00000-of-00001", "ckpt-0.index"]
    checkpoints.restore(checkpoint, first)


def dataclass_replace(config, **changes):
    return RunConfig(**{**config.to_dict(), **changes})


@pytest.mark.parametrize("changes, message", [
    ({"batch_size": 100_000}, "`batch_size` must be at most the"),
    ({"validation_examples": 100_000}, "`validation_examples` must be in"),
])
def test_settings_that_do_not_fit_the_data_are_refused_before_the_model_dir_is_written(tmp_path, shapes_data_dir,
                                                                                      changes, message):
    with pytest.raises(SettingsError, match=message):
        train(run_settings(tmp_path / "run", shapes_data_dir, **changes), write=quiet)
    assert not os.path.exists(tmp_path / "run")


def test_a_second_trainer_in_the_same_model_dir_is_refused(tmp_path, shapes_data_dir):
    os.makedirs(tmp_path / "run")
    with open(tmp_path / "run" / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(RunInUse, match="Another process is training"):
            train(run_settings(tmp_path / "run", shapes_data_dir), write=quiet)
    assert not os.path.exists(tmp_path / "run" / "run_config.json")


# --- CIFAR-10 offline ---

def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_cifar10_download_fails_within_seconds_naming_manual_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "CIFAR10_URL", f"https://127.0.0.1:{closed_port()}/cifar-10-binary.tar.gz")
    began = time.time()
    with pytest.raises(DatasetUnavailable, match=r"cannot be reached.*--manual_dir=FOLDER.*--data_dir"):
        data.load_images("cifar10", "train", 32, data_dir=str(tmp_path / "tfds"))
    assert time.time() - began < pipeline.CONNECT_TIMEOUT_S + 2
    with pytest.raises(DatasetUnavailable, match=r"`manual_dir` .* has no cifar-10-binary.tar.gz"):
        data.load_images("cifar10", "train", 32, data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path))


# --- the CLI: one line per user error, no traceback ---

def test_user_errors_found_at_run_time_are_one_line_without_a_traceback(tmp_path, shapes_data_dir):
    existing = tmp_path / "existing"
    files.write_json_atomically(str(existing / "run_config.json"),
                                run_settings(existing, shapes_data_dir, dropout_rate=0.3).to_dict())
    common = [f"--data_dir={shapes_data_dir}", "--dataset=shapes_tiny", "--image_size=8", "--dropout_rate=0.1",
              "--noexport",
              *RUN_FLAGS]
    cases = {  # name: (arguments, exit status, expected text)
        "settings": ([f"--model_dir={existing}", "--steps_per_epoch=2", "--epochs=2", "--checkpoint_every=1",
                      "--keep_checkpoints=10", "--image_summaries=0", "--deterministic", "--batch_size=8",
                      "--learning_rate=1e-3", "--progress=lines", "--log_every=1"], 2,
                     "holds a run with different settings (dropout_rate: 0.3 -> 0.1)"),
        "cifar": ([f"--model_dir={tmp_path / 'cifar'}", "--dataset=cifar10", "--image_size=32",
                   f"--manual_dir={tmp_path}"], 2, "has no cifar-10-binary.tar.gz"),
        "image_size": ([f"--model_dir={tmp_path / 'size'}", "--dataset=shapes", "--image_size=64"], 1,
                       "Flag `--image_size` must be one of [8, 16, 32] with dataset 'shapes'"),
    }
    processes = {name: subprocess.Popen([sys.executable, "-m", "trainers.cifar", *common, *arguments], cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "PYTHONPATH": REPO})
                 for name, (arguments, _, _) in cases.items()}
    for name, process in processes.items():
        _, err = process.communicate(timeout=300)
        _, status, message = cases[name]
        assert process.returncode == status, (name, err[-2000:])
        assert "ERROR: " in err and message in err, (name, err[-2000:])
        assert "Traceback" not in err and len(err.splitlines()) <= 2, (name, err[-3000:])  # ERROR: + a hint at most
        for noise in ("oneDNN", "cuInit", "absl::InitializeLog", "cuda"):  # TensorFlow's C++ start-up lines
            assert noise not in err, (name, noise, err[-3000:])
    for name in ("cifar", "size"):
        assert not os.path.exists(tmp_path / name) or not os.listdir(tmp_path / name), name
    assert json.loads((existing / "run_config.json").read_text())["dropout_rate"] == 0.3


def test_checkpoints_without_their_settings_are_refused_and_left_as_they_are(tmp_path, shapes_data_dir):
    model_dir = tmp_path / "run"
    config = tiny_run(model_dir, shapes_data_dir, epochs=1, image_summaries=0, export=False)
    train(config, write=lambda text, flush=False: None)
    index = (model_dir / "checkpoints" / "checkpoint").read_bytes()
    os.remove(model_dir / "run_config.json")
    other = tiny_run(model_dir, shapes_data_dir, epochs=2, image_summaries=0, export=False, dropout_rate=0.5)
    with pytest.raises(SettingsError, match="holds checkpoints but no run_config.json"):
        train(other, write=lambda text, flush=False: None)
    assert not (model_dir / "run_config.json").exists()  # nothing written, nothing trained
    assert (model_dir / "checkpoints" / "checkpoint").read_bytes() == index
    (model_dir / "run_config.json").write_text("{not json")
    with pytest.raises(DamagedFile, match=r"run_config.json is not valid JSON .* settings of the run in `model_dir`"):
        train(other, write=lambda text, flush=False: None)
