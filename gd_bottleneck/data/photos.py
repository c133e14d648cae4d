"""The ``gd_photos`` dataset: patches of real photographs that ship inside installed packages, split by photograph.

Why it exists: CIFAR-10 needs a download, and the embedded ``gd_shapes`` is synthetic (most of its bits are the
generator's own pixel noise). These are natural images available offline: scikit-learn's two sample photos and
matplotlib's Grace Hopper portrait (both packages are in the test extras: the dataset always builds), scikit-image's
bundled colour photos (``pip install 'gd_bottleneck[photos]'``) and Debian's ``opencv-doc`` examples
(``apt-get install opencv-doc``). A missing optional source is named in one line and left out; a missing required
one is an error. Provenance (package, file, size, licence as the package states it, split) of every photograph is
in the dataset's metadata (``builder.info.metadata``) and in ``docs/photos.md``.

How patches are cut (``patch`` = 16 or 32 pixels):
- **Split by photograph**: every photograph is in ``train`` or ``test`` (:data:`PHOTOS`), never both; a stereo pair
  or two frames of one scene are one photograph.
- **Scales**: each photograph is area-downsampled (``tf.image.resize(method="area")``, then rounded) so that its
  short side is ``2, 3 and 4 x patch``: a patch then covers a half, a third or a quarter of the scene's short side,
  objects and their context rather than texture alone (a CIFAR-10 image is a whole scene at 32x32).
- **Stride** ``patch // 8`` in both directions (patches overlap: neighbours share most pixels, so the number of
  independent examples is far below the patch count); the training split adds each patch's horizontal flip.
- **Deterministic**: decoding (TensorFlow's JPEG/PNG decoders), resizing and cutting are pure functions of the
  files, and tfds orders examples by key, so the same sources give byte-identical splits.
"""

import dataclasses
import importlib.util
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from gd_bottleneck.data.build_messages import LocalBuildMessages
from gd_bottleneck.errors import DatasetUnavailable

SCALES = (2, 3, 4)  # the photograph's short side, in patches
OPENCV_DOC = "/usr/share/doc/opencv-doc/examples/data"  # $GD_OPENCV_DOC_DIR overrides (e.g. an unpacked .deb)


def _package_folder(package, *parts):
    """A folder inside an installed package, found without importing it; None when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], *parts)


@dataclasses.dataclass(frozen=True)
class Source:
    """A package that ships photographs: where its files are, whether the dataset needs it, how to get it."""

    name: str
    required: bool
    install: str
    locate: object  # () -> folder or None

    def folder(self):
        folder = self.locate()
        return folder if folder and os.path.isdir(folder) else None


SOURCES = {
    "scikit-learn": Source("scikit-learn", True, "pip install scikit-learn",
                           lambda: _package_folder("sklearn", "datasets", "images")),
    "matplotlib": Source("matplotlib", True, "pip install matplotlib",
                         lambda: _package_folder("matplotlib", "mpl-data", "sample_data")),
    "scikit-image": Source("scikit-image", False, "pip install 'gd_bottleneck[photos]'",
                           lambda: _package_folder("skimage", "data")),
    "opencv-doc": Source("opencv-doc", False, "apt-get install opencv-doc (Debian, 96 MB)",
                         lambda: os.environ.get("GD_OPENCV_DOC_DIR", OPENCV_DOC)),
}

_SKIMAGE = "as stated in skimage.data's docstring: "
_OPENCV = "Apache-2.0 AND BSD-3-Clause (Debian's copyright file for opencv-doc, Files: *; no per-image licence)"


@dataclasses.dataclass(frozen=True)
class Photo:
    """One photograph: its files (two for a stereo pair or two frames of one scene), licence and split."""

    name: str
    source: str
    files: tuple
    licence: str
    split: str


def _opencv(name, *files, split="train"):
    return Photo(name, "opencv-doc", files, _OPENCV, split)


PHOTOS = (
    Photo("china", "scikit-learn", ("china.jpg",), "CC BY 2.0, danielbuechele on Flickr (sklearn's images/README.txt)",
          "train"),
    Photo("flower", "scikit-learn", ("flower.jpg",), "CC BY 2.0, vultilion on Flickr (sklearn's images/README.txt)",
          "train"),
    Photo("grace_hopper", "matplotlib", ("grace_hopper.jpg",),
          "not stated by matplotlib (a U.S. Navy photograph of Grace Hopper)", "test"),
    Photo("astronaut", "scikit-image", ("astronaut.png",), _SKIMAGE + "public domain (NASA)", "train"),
    Photo("chelsea", "scikit-image", ("chelsea.png",), _SKIMAGE + "CC0, Stefan van der Walt", "train"),
    Photo("coffee", "scikit-image", ("coffee.png",), _SKIMAGE + "CC0, Rachel Michetti", "test"),
    Photo("hubble_deep_field", "scikit-image", ("hubble_deep_field.jpg",), _SKIMAGE + "public domain (NASA)", "train"),
    Photo("immunohistochemistry", "scikit-image", ("ihc.png",), _SKIMAGE + "no known copyright restrictions", "train"),
    Photo("motorcycle", "scikit-image", ("motorcycle_left.png", "motorcycle_right.png"),
          _SKIMAGE + "none stated (Middlebury 2014 stereo benchmark)", "train"),
    Photo("retina", "scikit-image", ("retina.jpg",), _SKIMAGE + "CC0 1.0 (Wikimedia Commons)", "train"),
    Photo("rocket", "scikit-image", ("rocket.jpg",), _SKIMAGE + "public domain (SpaceX)", "train"),
    _opencv("aero", "aero1.jpg", "aero3.jpg"),
    _opencv("aloe", "aloeL.jpg", "aloeR.jpg"),
    _opencv("apple", "apple.jpg"),
    _opencv("baboon", "baboon.jpg"),
    _opencv("board", "board.jpg"),
    _opencv("building", "building.jpg"),
    _opencv("butterfly", "butterfly.jpg"),
    _opencv("chick", "chicky_512.png"),
    _opencv("dog", "ela_original.jpg"),
    _opencv("fruits", "fruits.jpg", split="test"),
    _opencv("graffiti", "graf1.png", "graf3.png"),
    _opencv("home", "home.jpg", split="test"),
    _opencv("leuven", "leuvenA.jpg", "leuvenB.jpg", split="test"),
    _opencv("stereo_room", "left.jpg", "right.jpg"),
    _opencv("car", "licenseplate_motion.jpg"),
    _opencv("football", "messi5.jpg"),
    _opencv("orange", "orange.jpg"),
    _opencv("objects", "pca_test1.jpg"),
    _opencv("rubber_whale", "rubberwhale1.png", "rubberwhale2.png"),
    _opencv("smarties", "smarties.png"),
    _opencv("squirrel", "squirrel_cls.jpg", split="test"),
    _opencv("desk", "stuff.jpg"),
)


def available_sources(names, notify=print):
    """``{source name: folder}`` of the installed sources among ``names``; a missing optional one is named in one
    line through ``notify``, a missing required one raises :class:`DatasetUnavailable`."""
    found = {}
    for name in names:
        source = SOURCES[name]
        folder = source.folder()
        if folder is not None:
            found[name] = folder
        elif source.required:
            raise DatasetUnavailable(f"gd_photos needs the photographs of {name}, which is not installed: "
                                     f"{source.install}.")
        else:
            count = sum(photo.source == name for photo in PHOTOS)
            notify(f"gd_photos: optional source {name} is not installed ({source.install}); building without its "
                   f"{count} photographs.")
    return found


def read_photo(path):
    """A photograph file as uint8 ``[H, W, 3]`` (TensorFlow's decoders; an alpha channel is dropped)."""
    data = tf.io.read_file(path)
    return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()


def downsample(image, short_side):
    """Area-downsamples ``image`` (uint8 ``[H, W, 3]``) so that its short side is ``short_side`` pixels."""
    height, width = image.shape[:2]
    factor = short_side / min(height, width)
    size = [max(short_side, round(height * factor)), max(short_side, round(width * factor))]
    resized = tf.image.resize(tf.cast(image, tf.float32), size, method="area").numpy()
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def patches(image, patch, stride):
    """Every ``patch x patch`` window of ``image`` at ``stride``: ``(array [N, patch, patch, 3], [(y, x)])``."""
    height, width = image.shape[:2]
    corners = [(y, x) for y in range(0, height - patch + 1, stride) for x in range(0, width - patch + 1, stride)]
    return np.stack([image[y:y + patch, x:x + patch] for y, x in corners]), corners


def photo_examples(photo, folder, patch, flips):
    """The examples of one photograph: ``(key, features)`` pairs over its files, scales, windows (and flips)."""
    for file_index, name in enumerate(photo.files):
        image = read_photo(os.path.join(folder, name))
        for scale in SCALES:
            windows, corners = patches(downsample(image, scale * patch), patch, max(1, patch // 8))
            for window, (y, x) in zip(windows, corners):
                for flipped in ((False, True) if flips else (False,)):
                    key = f"{photo.name}/{file_index}/{scale}/{y}/{x}/{int(flipped)}"
                    yield key, {"image": window[:, ::-1] if flipped else window, "photo": photo.name,
                                "scale": scale, "y": y, "x": x, "flipped": flipped}


@dataclasses.dataclass(eq=False)
class PhotosConfig(tfds.core.BuilderConfig):
    """One patch size and the sources it draws from."""

    image_size: int = 16
    sources: tuple = tuple(SOURCES)


class GdPhotos(LocalBuildMessages, tfds.core.GeneratorBasedBuilder):
    """Patches of the photographs shipped by installed packages (see the module docstring)."""

    BUILD_SECONDS = {"16": 30, "32": 35, "16_core": 3}  # with every source, measured once, 2 cores

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: scikit-learn, matplotlib, scikit-image and opencv-doc photographs."}
    BUILDER_CONFIGS = [
        PhotosConfig(name="16", description="16x16 patches from every installed source.", image_size=16),
        PhotosConfig(name="32", description="32x32 patches from every installed source.", image_size=32),
        PhotosConfig(name="16_core", description="16x16 patches from the two required sources only (the same "
                     "on every machine; for tests).", image_size=16, sources=("scikit-learn", "matplotlib")),
    ]

    def _info(self):
        size = self.builder_config.image_size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3)),
                "photo": tfds.features.Text(),
                "scale": tfds.features.Tensor(shape=(), dtype=np.int64),
                "y": tfds.features.Tensor(shape=(), dtype=np.int64),
                "x": tfds.features.Tensor(shape=(), dtype=np.int64),
                "flipped": tfds.features.Tensor(shape=(), dtype=np.bool_),
            }),
            supervised_keys=None,
            homepage="https://github.com/gd-bottleneck/gd_bottleneck",
            metadata=tfds.core.MetadataDict(),
        )

    def build_summary(self):
        config = self.builder_config
        return (f"{config.image_size}x{config.image_size} patches of the photographs that "
                f"{', '.join(config.sources)} ship (those installed; train and test split by photograph)")

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        config = self.builder_config
        folders = available_sources(config.sources)
        chosen = [photo for photo in PHOTOS if photo.source in folders]
        provenance = []
        for photo in chosen:
            shape = read_photo(os.path.join(folders[photo.source], photo.files[0])).shape
            provenance.append({"name": photo.name, "package": photo.source, "files": list(photo.files),
                               "folder": folders[photo.source], "height": int(shape[0]), "width": int(shape[1]),
                               "licence": photo.licence, "split": photo.split})
        self.info.metadata.update({"photos": provenance, "sources": sorted(folders), "scales": list(SCALES),
                                   "stride": max(1, config.image_size // 8)})
        return {split: self._generate_examples([p for p in chosen if p.split == split], folders, split == "train")
                for split in ("train", "test")}

    def _generate_examples(self, photos, folders, flips):
        for photo in photos:
            yield from photo_examples(photo, folders[photo.source], self.builder_config.image_size, flips)
