"""The gd_photos dataset: patches of packaged photographs, split by photograph, deterministic, with provenance."""

import collections

import numpy as np
import pytest
import tensorflow_datasets as tfds

from gd_bottleneck import data
from gd_bottleneck.data import photos
from gd_bottleneck.data.pipeline import builder_name
from gd_bottleneck.errors import DatasetUnavailable
from gd_bottleneck.training import train
from tests.tiny_models import tiny_run


def build(folder, config="16_core"):
    builder = tfds.builder(f"gd_photos/{config}", data_dir=str(folder))
    builder.download_and_prepare()
    return builder


def whole(builder, split):
    return next(iter(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False).batch(10 ** 6))))


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    return build(tmp_path_factory.mktemp("photos"))


def test_every_photograph_is_in_one_split_and_test_patches_come_from_unseen_photographs(core):
    names = [photo.name for photo in photos.PHOTOS]
    assert len(names) == len(set(names)) and {photo.split for photo in photos.PHOTOS} == {"train", "test"}
    train_photos = set(whole(core, "train")["photo"].tolist())
    test_photos = set(whole(core, "test")["photo"].tolist())
    assert train_photos == {b"china", b"flower"} and test_photos == {b"grace_hopper"}


def test_patches_are_the_photographs_windows_at_the_stated_scales_and_stride(core):
    train = whole(core, "train")
    counts = collections.Counter(train["photo"].tolist())
    for photo in (p for p in photos.PHOTOS if p.name in ("china", "flower")):
        folder = photos.SOURCES[photo.source].folder()
        expected = list(photos.photo_examples(photo, folder, 16, flips=True))
        assert counts[photo.name.encode()] == len(expected)
    # A stored patch is the window of the downsampled photograph at its recorded scale and corner, and the training
    # split holds its mirror image too.
    china = photos.read_photo(photos.SOURCES["scikit-learn"].folder() + "/china.jpg")
    for scale in photos.SCALES:
        small = photos.downsample(china, scale * 16)
        assert min(small.shape[:2]) == scale * 16
        chosen = (train["photo"] == b"china") & (train["scale"] == scale) & ~train["flipped"]
        for index in np.flatnonzero(chosen)[:5]:
            y, x = train["y"][index], train["x"][index]
            assert y % 2 == 0 and x % 2 == 0  # stride 16 // 8
            np.testing.assert_array_equal(train["image"][index], small[y:y + 16, x:x + 16])
            mirror = (train["photo"] == b"china") & (train["scale"] == scale) & train["flipped"] & \
                (train["y"] == y) & (train["x"] == x)
            np.testing.assert_array_equal(train["image"][np.flatnonzero(mirror)[0]], small[y:y + 16, x:x + 16][:, ::-1])
    assert not whole(core, "test")["flipped"].any()


def test_the_same_sources_give_byte_identical_splits(core, tmp_path):
    again = build(tmp_path)
    for split in ("train", "test"):
        first, second = whole(core, split), whole(again, split)
        np.testing.assert_array_equal(first["image"], second["image"])
        np.testing.assert_array_equal(first["photo"], second["photo"])


def test_the_metadata_records_every_photographs_provenance(core):
    metadata = core.info.metadata
    assert metadata["sources"] == ["matplotlib", "scikit-learn"] and metadata["stride"] == 2
    recorded = {entry["name"]: entry for entry in metadata["photos"]}
    assert set(recorded) == {"china", "flower", "grace_hopper"}
    assert recorded["china"]["licence"].startswith("CC BY 2.0") and recorded["china"]["split"] == "train"
    assert (recorded["grace_hopper"]["height"], recorded["grace_hopper"]["width"]) == (600, 512)
    assert recorded["flower"]["files"] == ["flower.jpg"] and recorded["flower"]["package"] == "scikit-learn"


def test_missing_sources_are_named_optional_in_one_line_required_as_an_error(monkeypatch):
    monkeypatch.setitem(photos.SOURCES, "opencv-doc", photos.SOURCES["opencv-doc"].__class__(
        "opencv-doc", False, "apt-get install opencv-doc", lambda: "/nonexistent"))
    lines = []
    found = photos.available_sources(["scikit-learn", "opencv-doc"], notify=lines.append)
    assert set(found) == {"scikit-learn"}
    (line,) = lines
    assert "optional source opencv-doc is not installed" in line and "22 photographs" in line
    monkeypatch.setitem(photos.SOURCES, "matplotlib", photos.SOURCES["matplotlib"].__class__(
        "matplotlib", True, "pip install matplotlib", lambda: None))
    with pytest.raises(DatasetUnavailable, match="needs the photographs of matplotlib.*pip install matplotlib"):
        photos.available_sources(["matplotlib"])


def test_photos_exist_at_16_and_32_only():
    assert builder_name("photos", 16) == "gd_photos/16" and builder_name("photos", 32) == "gd_photos/32"
    with pytest.raises(ValueError, match=r"`image_size` must be one of \[16, 32\] with dataset 'photos'"):
        builder_name("photos", 8)


def test_the_trainer_trains_on_photos(tmp_path):
    folder = str(tmp_path / "tfds")
    results = train(tiny_run(str(tmp_path / "run"), folder, dataset="photos", image_size=16, export=False,
                             image_summaries=0, epochs=1, steps_per_epoch=2),
                    write=lambda text, flush=False: None)
    assert results["steps"] == 2 and np.isfinite(results["test_elbo_bpd"])
    assert results["test_images"] == len(data.load_images("photos", "test", 16, data_dir=folder))


def test_the_baselines_score_known_distributions_exactly():
    from gd_bottleneck.data import statistics
    rng = np.random.default_rng(0)
    uniform, held_out = (rng.integers(0, 256, (count, 2, 2, 3)).astype(np.uint8) for count in (4000, 500))
    assert statistics.marginal_bpd(uniform, held_out) == pytest.approx(8.0, abs=0.02)
    assert statistics.independent_bpd(uniform, held_out) == pytest.approx(8.0, abs=0.1)
    # Position (0, 0) red is always 7, the rest is uniform: only the per-position model sees it.
    structured, structured_held_out = uniform.copy(), held_out.copy()
    structured[:, 0, 0, 0] = structured_held_out[:, 0, 0, 0] = 7
    smoothed = -np.log2(4001 / 4256) / 12 + 8.0 * 11 / 12  # add-one smoothing's cost at the constant slot
    assert statistics.independent_bpd(structured, structured_held_out) == pytest.approx(smoothed, abs=0.1)
    assert statistics.marginal_bpd(structured, structured_held_out) > smoothed + 0.2
    mean, std = statistics.channel_moments(np.full((3, 2, 2, 3), 255, np.uint8))
    np.testing.assert_allclose(mean, 1.0) and np.testing.assert_allclose(std, 0.0)
