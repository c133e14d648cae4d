"""The embedded gd_shapes dataset and the input pipelines: determinism, factors, resumable order, bad input."""

import numpy as np
import pytest

from gd_bottleneck import data
from gd_bottleneck.data import shapes
from gd_bottleneck.data.pipeline import builder_name


def test_a_scene_is_a_pure_function_of_its_seed():
    first, factors = shapes.render_scene(np.random.default_rng([0, 5]), 32)
    again, factors_again = shapes.render_scene(np.random.default_rng([0, 5]), 32)
    other, _ = shapes.render_scene(np.random.default_rng([1, 5]), 32)
    assert first.dtype == np.uint8 and first.shape == (32, 32, 3)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(factors["objects"]["x"], factors_again["objects"]["x"])
    assert not np.array_equal(first, other)


def test_recorded_factors_describe_the_pixels():
    for index in range(60):
        image, factors = shapes.render_scene(np.random.default_rng([0, index]), 32)
        objects, count = factors["objects"], int(factors["num_objects"])
        assert 1 <= count <= shapes.MAX_OBJECTS
        assert np.all(objects["kind"][:count] > 0) and np.all(objects["kind"][count:] == 0)
        assert np.all(np.diff(objects["size"][:count]) <= 0), "slots are ordered largest first"
        # The last drawn (smallest) object is on top: its centre pixel has its palette colour, up to the texture
        # noise (stddev 6 levels) and a little shading.
        top = count - 1
        row, col = int(objects["y"][top] * 32), int(objects["x"][top] * 32)
        expected = shapes.PALETTE[objects["color"][top]]
        assert np.all(np.abs(image[row, col].astype(float) - expected) < 30), (index, image[row, col], expected)


def test_the_tfds_build_holds_exactly_the_rendered_scenes_with_aligned_factors(shapes_data_dir):
    images = data.load_images("shapes_tiny", "test", 8, data_dir=shapes_data_dir)
    factors = data.load_factors("test", 8, data_dir=shapes_data_dir, dataset="shapes_tiny")
    assert images.shape == (128, 8, 8, 3) and images.dtype == np.uint8
    assert data.load_images("shapes_tiny", "train", 8, data_dir=shapes_data_dir).shape == (512, 8, 8, 3)
    rendered = {}
    for index in range(128):
        image, scene = shapes.render_scene(np.random.default_rng([shapes.SPLIT_IDS["test"], index]), 8)
        rendered[image.tobytes()] = scene
    assert {image.tobytes() for image in images} == set(rendered)
    for position, image in enumerate(images):
        scene = rendered[image.tobytes()]
        assert factors["num_objects"][position] == scene["num_objects"]
        np.testing.assert_array_equal(factors["objects"]["kind"][position], scene["objects"]["kind"])
        np.testing.assert_allclose(factors["objects"]["x"][position], scene["objects"]["x"])
        assert factors["background"]["hue"][position] == pytest.approx(scene["background"]["hue"])


def _batches(dataset):
    return [batch.numpy() for batch in dataset]


def test_training_batches_visit_a_fresh_permutation_each_epoch_and_stay_uint8():
    images = np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1).repeat(3, axis=-1)
    batches = _batches(data.training_batches(images, batch_size=4, steps_per_epoch=10, epochs=3, seed=7))
    assert len(batches) == 30 and all(b.dtype == np.uint8 and b.shape == (4, 1, 1, 3) for b in batches)
    epochs = [np.concatenate(batches[e * 10:(e + 1) * 10])[:, 0, 0, 0] for e in range(3)]
    for order in epochs:
        np.testing.assert_array_equal(np.sort(order), np.arange(40))
    assert not np.array_equal(epochs[0], epochs[1])
    again = _batches(data.training_batches(images, batch_size=4, steps_per_epoch=10, epochs=3, seed=7))
    np.testing.assert_array_equal(np.stack(batches), np.stack(again))
    other_seed = _batches(data.training_batches(images, batch_size=4, steps_per_epoch=10, epochs=3, seed=8))
    assert not np.array_equal(np.stack(batches), np.stack(other_seed))


@pytest.mark.parametrize("start_step", [0, 3, 7, 8, 15, 24])
def test_a_resumed_stream_continues_exactly_where_the_full_stream_is(start_step):
    images = np.random.default_rng(0).integers(0, 256, (50, 2, 2, 3), dtype=np.uint8)
    full = _batches(data.training_batches(images, 6, steps_per_epoch=8, epochs=3, seed=1))
    resumed = _batches(data.training_batches(images, 6, steps_per_epoch=8, epochs=3, seed=1, start_step=start_step))
    assert len(resumed) == 24 - start_step
    for expected, actual in zip(full[start_step:], resumed):
        np.testing.assert_array_equal(expected, actual)


def test_evaluation_batches_cover_every_image_in_order():
    images = np.random.default_rng(0).integers(0, 256, (10, 2, 2, 3), dtype=np.uint8)
    batches = _batches(data.evaluation_batches(images, 4))
    assert [len(b) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(batches), images)


def test_bad_requests_name_the_problem():
    images = np.zeros((10, 2, 2, 3), np.uint8)
    with pytest.raises(ValueError, match="exceeds the 10 images"):
        data.training_batches(images, 4, steps_per_epoch=3, epochs=1, seed=0)
    with pytest.raises(ValueError, match="start_step"):
        data.training_batches(images, 2, steps_per_epoch=5, epochs=1, seed=0, start_step=6)
    with pytest.raises(ValueError, match="`image_size` must be 32 with dataset 'cifar10'.*image_size=16"):
        builder_name("cifar10", 16)
    with pytest.raises(ValueError, match=r"`image_size` must be one of \[8, 16, 32\] with dataset 'shapes'"):
        builder_name("shapes", 24)
    with pytest.raises(ValueError, match="`dataset` must be one of"):
        builder_name("mnist", 28)


def test_processes_that_start_at_once_all_get_the_dataset_built_once(tmp_path):
    # Tuner workers and multi-worker training start together on an unbuilt dataset; unguarded, tfds lets each build
    # its own copy and all but the first fail renaming it into place (FileExistsError).
    import subprocess
    import sys

    script = ("import sys, numpy as np; from gd_bottleneck import data; "
              "images = data.load_images('shapes_tiny', 'test', 8, data_dir=sys.argv[1]); "
              "print(images.shape[0], int(images.astype(np.int64).sum()))")
    processes = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-2000:]
    expected = data.load_images("shapes_tiny", "test", 8, data_dir=str(tmp_path))
    assert {stdout.split()[-2] + " " + stdout.split()[-1] for stdout, _ in outputs} == \
        {f"{expected.shape[0]} {int(expected.astype(np.int64).sum())}"}
    assert not list(tmp_path.glob("gd_shapes/8_tiny/incomplete*"))


# --- the entropy floor of the embedded dataset ---

@pytest.mark.parametrize("mean", [-40.0, 0.0, 3.2, 127.3, 253.9, 255.0])
def test_the_pixel_entropy_matches_a_monte_carlo_estimate(mean):
    from gd_bottleneck.data.entropy_floor import discretized_gaussian_entropy_bits
    values = np.clip(np.round(mean + 6.0 * np.random.default_rng(0).standard_normal(2_000_000)), 0, 255)
    frequencies = np.unique(values, return_counts=True)[1] / values.size
    estimate = -np.sum(frequencies * np.log2(frequencies))
    assert discretized_gaussian_entropy_bits(mean, 6.0) == pytest.approx(estimate, abs=3e-3)


def test_the_floor_is_the_noise_entropy_of_the_rendered_scenes():
    from gd_bottleneck.data import shapes
    from gd_bottleneck.data.entropy_floor import discretized_gaussian_entropy_bits, entropy_floor
    # The image is clip(round(mean + noise)) of the scene's mean: the floor's model of the data is the generator.
    image, _ = shapes.render_scene(np.random.default_rng([1, 5]), 8)
    rng = np.random.default_rng([1, 5])
    mean, _ = shapes.scene_mean(rng, 8)
    np.testing.assert_array_equal(image, np.clip(np.round(mean + rng.normal(0.0, 6.0, mean.shape)), 0, 255))
    # Unclipped, a sub-pixel's entropy is that of a Gaussian with Sheppard's variance sigma^2 + 1/12 (bin width 1).
    sheppard = 0.5 * np.log2(2 * np.pi * np.e * (36 + 1 / 12))
    assert discretized_gaussian_entropy_bits(127.3, 6.0) == pytest.approx(sheppard, abs=1e-5)
    figures = entropy_floor("test", 8, 64)
    assert 4.0 < figures["floor_bpd"] <= figures["unclipped_pixel_entropy_bits"]  # clipping only removes entropy
    assert figures["scene_information_bound_bpd"] > 0
    assert figures["best_nll_upper_bound_bpd"] == pytest.approx(figures["floor_bpd"] +
                                                                figures["scene_information_bound_bpd"])


def test_building_an_embedded_dataset_prints_one_line_of_its_own_and_a_built_one_nothing(tmp_path, capsys):
    data.prepare("shapes_tiny", 8, data_dir=str(tmp_path))
    printed = capsys.readouterr().out
    assert "Unknown size" not in printed and "Subsequent calls" not in printed
    (line,) = [text for text in printed.splitlines() if text.startswith("Building ")]
    assert line.startswith("Building gd_shapes/8_tiny: 512 train and 128 test procedural 8x8 scenes, no download, "
                           f"into {tmp_path}") and line.endswith("about 1 s.")
    data.prepare("shapes_tiny", 8, data_dir=str(tmp_path))
    assert capsys.readouterr().out == ""
