"""The trainer CLI end to end, in subprocesses: SIGKILL/SIGTERM resume, replicas, workers, export and sample CLIs.

The runs are started concurrently (graph tracing is single-threaded, so two cores run two traces at once) by the
module fixture ``runs``, and the tests check what each run left behind.
"""

import glob
import json
import os
import signal
import socket
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.cli_runs import Run, environment

TOTAL_STEPS = 40  # 2 epochs of 20 steps (tests/cli_runs.py); the kill at 30 resumes mid-epoch
KILLED_AFTER, TERMINATED_AFTER = 30, 10  # checkpoints after which the runs get SIGKILL / SIGTERM
COMPARED_STEP = 10  # replica runs are compared with the 1-replica run here, before Adam amplifies float noise


def signal_after_checkpoints(actions):
    """``actions``: [(run, step, signal)]; sends each signal once its run has written checkpoint ``step``."""
    pending = list(actions)
    while pending:
        for action in list(pending):
            run, step, signum = action
            if run.checkpoint_reached(step):
                run.process.send_signal(signum)
                pending.remove(action)
            elif run.process.poll() is not None:
                raise AssertionError(f"a run ended before checkpoint {step}: {open(run.err_path).read()[-2000:]}")
        time.sleep(0.01)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def weights(model_dir, step=None):
    """Every saved tensor of the newest checkpoint (or of checkpoint ``step``) of a run."""
    folder = os.path.join(str(model_dir), "checkpoints")
    reader = tf.train.load_checkpoint(folder if step is None else os.path.join(folder, f"ckpt-{step}"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


def assert_same_model_weights(actual, expected, rtol=2e-4, atol=2e-5):
    assert expected.keys() == actual.keys()
    for name in expected:
        if name.startswith("model_variables") and np.issubdtype(expected[name].dtype, np.floating):
            np.testing.assert_allclose(actual[name], expected[name], rtol=rtol, atol=atol, err_msg=name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shapes_data_dir):
    """All trainer runs of this module, two phases of concurrent subprocesses."""
    base = tmp_path_factory.mktemp("runs")
    data = shapes_data_dir
    first = {"uninterrupted": Run(base / "uninterrupted", data), "killed": Run(base / "killed", data),
             "terminated": Run(base / "terminated", data, "--intra_op_threads=1"),
             "mirrored": Run(base / "mirrored", data, "--strategy=mirrored", "--cpu_replicas=2")}
    signal_after_checkpoints([(first["killed"], KILLED_AFTER, signal.SIGKILL),
                              (first["terminated"], TERMINATED_AFTER, signal.SIGTERM)])
    for run in first.values():
        run.wait()
    second = {"resumed": Run(base / "killed", data),
              "export": Run.tool("trainers.export", base / "uninterrupted", f"--export_dir={base / 'saved'}"),
              "sample": Run.tool("trainers.sample", base / "uninterrupted", "--num=6", "--columns=4",
                                 f"--out={base / 'grid' / 'samples.png'}"),
              "demo_figure": Run.tool("trainers.demo_figure", base / "uninterrupted", "--num=3"),
              **two_workers(base / "workers", data, "killed_worker")}
    signal_after_checkpoints([(second[f"killed_worker{index}"], KILLED_AFTER, signal.SIGKILL) for index in range(2)])
    for run in second.values():
        run.wait()
    third = two_workers(base / "workers", data, "worker")  # every worker restarted after the kill
    for run in third.values():
        run.wait()
    return {**first, **second, **third}


def two_workers(model_dir, data, name):
    """A 2-worker MultiWorkerMirroredStrategy run on loopback: ``{f"{name}0": chief, f"{name}1": other}``."""
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    runs = {}
    for index in range(2):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        runs[f"{name}{index}"] = Run(model_dir, data, "--strategy=multi_worker", env=environment(TF_CONFIG=config))
    return runs


def test_a_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(runs):
    assert runs["killed"].process.returncode == -signal.SIGKILL
    runs["uninterrupted"].assert_succeeded()
    resumed = runs["resumed"].assert_succeeded()
    start = int(resumed.stdout.split("Resuming at step ")[1].split("/")[0])
    assert KILLED_AFTER <= start < TOTAL_STEPS
    assert os.path.exists(os.path.join(resumed.model_dir, "results.json"))
    expected, actual = weights(runs["uninterrupted"].model_dir), weights(resumed.model_dir)
    assert expected.keys() == actual.keys()
    for name in expected:  # bit for bit: model, optimizer (incl. step) and noise counters
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)


def test_sigterm_saves_a_checkpoint_and_exits_with_a_resume_hint(runs):
    terminated = runs["terminated"]
    assert terminated.process.returncode == 130, terminated.stderr[-2000:]
    assert "SIGTERM received: checkpoint saved at step" in terminated.stderr
    assert "rerun the same command" in terminated.stderr
    step = int(terminated.stderr.split("checkpoint saved at step ")[1].split()[0])
    assert TERMINATED_AFTER <= step < TOTAL_STEPS
    assert tf.train.latest_checkpoint(os.path.join(terminated.model_dir, "checkpoints")).endswith(f"ckpt-{step}")
    assert not os.path.exists(os.path.join(terminated.model_dir, "results.json"))
    with open(os.path.join(terminated.model_dir, "run_config.json")) as stream:  # it trained with one thread per op
        assert json.load(stream)["intra_op_threads"] == 1


def test_two_cpu_replicas_train_to_the_weights_of_one(runs):
    mirrored = runs["mirrored"].assert_succeeded()
    assert "2 replica(s)" in mirrored.stdout
    assert_same_model_weights(weights(mirrored.model_dir, COMPARED_STEP),
                              weights(runs["uninterrupted"].model_dir, COMPARED_STEP))


def test_two_workers_on_loopback_train_to_the_weights_of_one(runs):
    for index in range(2):
        assert "2 replica(s)" in runs[f"worker{index}"].assert_succeeded().stdout
    model_dir = runs["worker0"].model_dir
    assert_same_model_weights(weights(model_dir, COMPARED_STEP), weights(runs["uninterrupted"].model_dir,
                                                                         COMPARED_STEP))
    scratch = glob.glob(os.path.join(model_dir, "workers", f"pid-{runs['worker1'].process.pid}"))
    assert len(scratch) == 1  # the non-chief worker's copy (of the restarted run), identical to the chief's
    other = tf.train.load_checkpoint(scratch[0])
    for name, value in weights(model_dir).items():
        if name.startswith("model_variables"):
            np.testing.assert_array_equal(other.get_tensor(name), value, err_msg=name)
    assert os.path.exists(os.path.join(model_dir, "results.json"))
    # Only the chief writes TensorBoard events (file names end in .<pid>.<n>.v2): the killed one, then the restarted.
    events = glob.glob(os.path.join(model_dir, "tensorboard", "**", "events.out.tfevents.*"), recursive=True)
    writers = {int(os.path.basename(path).split(".")[-3]) for path in events}
    assert events and writers <= {runs["killed_worker0"].process.pid, runs["worker0"].process.pid}, writers


def test_killed_workers_all_restart_from_the_chiefs_checkpoint(runs):
    """Every worker resumes from the chief's newest checkpoint (a non-chief that restored anything else would train
    other weights than the chief from there on: the copies compared in the test above would differ)."""
    for index in range(2):
        assert runs[f"killed_worker{index}"].process.returncode == -signal.SIGKILL
        start = int(runs[f"worker{index}"].assert_succeeded().stdout.split("Resuming at step ")[1].split("/")[0])
        assert KILLED_AFTER <= start < TOTAL_STEPS, index
    model_dir = runs["worker0"].model_dir
    assert_same_model_weights(weights(model_dir), weights(runs["uninterrupted"].model_dir))


def test_export_cli_writes_a_servable_version_of_a_trained_run(runs):
    done = runs["export"].assert_succeeded()
    path = done.stdout.strip().split(" to ")[-1]
    assert path.endswith(os.path.join("saved", "1")) and f"ckpt-{TOTAL_STEPS}" in done.stdout
    loaded = tf.saved_model.load(path)
    images = loaded.signatures["sample"](num_samples=tf.constant(2), seed=tf.constant([0, 1]))["images"]
    assert images.shape == (2, 8, 8, 3) and images.dtype == tf.uint8


def test_the_demo_figure_shows_data_reconstructions_and_samples_large_enough_to_see(runs):
    done = runs["demo_figure"].assert_succeeded()
    out = os.path.join(runs["uninterrupted"].model_dir, "demo.png")
    assert f"Wrote {out}: 3 test images" in done.stdout
    figure = tf.io.decode_png(tf.io.read_file(out)).numpy()[..., :3]
    # three rows of 3 images, each 8x8 image drawn 64x64 (8x nearest neighbour): at least 3 x 64 pixels each way
    assert figure.shape[0] >= 3 * 64 and figure.shape[1] >= 3 * 64
    from gd_bottleneck.training import checkpoints, files
    from trainers import demo_figure
    config = checkpoints.run_config_of(os.path.join(runs["uninterrupted"].model_dir, "run_config.json"))
    results = files.read_json(os.path.join(runs["uninterrupted"].model_dir, "results.json"))
    words = demo_figure.caption(config, results)
    assert "Gaussian dropout p = " in words and f"after {results['steps']:,} steps" in words
    assert f"test ELBO {results['test_elbo_bpd']:.3f} bits/dim" in words
    strip = demo_figure.upscaled(np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3) % 251, 8)
    assert strip.shape == (64, 2 * 64 + 2, 3)  # two 64-pixel images and one white 2-pixel gap
    np.testing.assert_array_equal(strip[:8, :8], np.broadcast_to(strip[0, 0], (8, 8, 3)))  # one source pixel


def test_labelled_figures_draw_each_strip_pixel_for_pixel_beside_labels_and_under_a_title_that_fits():
    """The figure keeps every image at least 64 pixels wide in the PNG (matplotlib's tight_layout had shrunk the
    strips to make room for the labels: 8 images of 16 pixels came out 55 pixels wide)."""
    from trainers import demo_figure

    rows = [np.random.default_rng(row).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8) for row in range(3)]
    labels = ["test images", "GD samples, another z", "x"]
    title = "a caption line much longer than the strips, " * 4 + "\nand a second line"
    figure, axes, strips = demo_figure.layout(rows, labels, title)
    renderer = figure.canvas.get_renderer()
    for axis, strip in zip(axes, strips):
        box = axis.get_window_extent(renderer)
        assert (round(box.width), round(box.height)) == (strip.shape[1], strip.shape[0])  # one pixel per pixel
        assert box.x0 >= axis.yaxis.label.get_window_extent(renderer).x1  # the label stays left of its strip
    assert strips[0].shape[0] == 64 and strips[0].shape[1] >= 8 * 64
    import matplotlib.text
    (title_text,) = [text for text in figure.findobj(matplotlib.text.Text) if text.get_text() == title]
    title_box = title_text.get_window_extent(renderer)
    assert 0 <= title_box.x0 and title_box.x1 <= figure.bbox.width  # the title is not clipped
    demo_figure.pyplot().close(figure)


def test_sample_cli_writes_a_png_grid(runs):
    done = runs["sample"].assert_succeeded()
    out = os.path.join(os.path.dirname(runs["uninterrupted"].model_dir), "grid", "samples.png")
    assert "Wrote 6 samples" in done.stdout
    grid = tf.io.decode_png(tf.io.read_file(out)).numpy()
    assert grid.shape == (16, 32, 3)  # 2 rows x 4 columns of 8x8 images
    assert grid[:8].std() > 0 and not os.path.exists(out + ".partial")
