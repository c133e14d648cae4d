"""Input pipelines: whole splits held in memory as uint8, served in a deterministic, resumable order.

Why in memory: the datasets this project trains on are small (CIFAR-10's train split is 150 MiB as uint8), and an
index-based order lets a resumed run continue at *exactly* the batch where it stopped without reading the skipped
data: epoch ``e`` visits a stateless permutation keyed by ``(seed, e)``, so batch ``s`` of the run is a pure function
of ``(seed, s)``. Images stay uint8 all the way to the model, which rescales them once.

CIFAR-10 offline: put the original ``cifar-10-binary.tar.gz`` (170052171 bytes) in a folder and pass it as
``manual_dir``; tfds verifies its checksum and builds the dataset under ``data_dir`` (or ``$TFDS_DATA_DIR``, by
default ``~/tensorflow_datasets``). Once built, no archive or network is needed.
"""

import fcntl
import os
import socket
import urllib.parse

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

from gd_bottleneck.data import photos, shapes
from gd_bottleneck.errors import DatasetUnavailable

DATASETS = ("shapes", "shapes_tiny", "photos", "cifar10")  # shapes_tiny: 8x8, 512 / 128 images, for tests
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"  # what tfds' cifar10 builder downloads
CIFAR10_ARCHIVE = os.path.basename(CIFAR10_URL)
CONNECT_TIMEOUT_S = 5.0
OFFLINE_HELP = (f"Either put the original {CIFAR10_ARCHIVE} (170052171 bytes, from {CIFAR10_URL}) in a folder and "
                "pass --manual_dir=FOLDER, or point --data_dir (or $TFDS_DATA_DIR) at a tfds folder where cifar10 "
                "is already prepared.")


def builder_name(dataset, image_size):
    """The tfds name of ``dataset`` at ``image_size`` (``ValueError`` for combinations that do not exist)."""
    if dataset == "cifar10":
        if image_size != 32:
            raise ValueError(f"Argument `image_size` must be 32 with dataset 'cifar10' (32x32 images; this project "
                             "never resizes images: resampling would change the likelihood being measured). Received: "
                             f"image_size={image_size}")
        return "cifar10"
    if dataset == "shapes_tiny":
        if image_size != 8:
            raise ValueError(f"Argument `image_size` must be 8 with dataset 'shapes_tiny'. Received: "
                             f"image_size={image_size}")
        return "gd_shapes/8_tiny"
    if dataset in ("shapes", "photos"):
        builder = shapes.GdShapes if dataset == "shapes" else photos.GdPhotos
        sizes = sorted(config.image_size for config in builder.BUILDER_CONFIGS if config.name.isdigit())
        if image_size not in sizes:
            raise ValueError(f"Argument `image_size` must be one of {sizes} with dataset {dataset!r}. Received: "
                             f"image_size={image_size}")
        return f"{builder.name}/{image_size}"
    raise ValueError(f"`dataset` must be one of {DATASETS}. Received: dataset={dataset!r}")


def _check_source_reachable(dataset, manual_dir):
    """Fails within seconds, with what to do, when an unprepared CIFAR-10 cannot be obtained.

    Without this, tfds retries an unreachable download for minutes and then raises a raw ``ConnectionError``.
    """
    if dataset != "cifar10":
        return  # generated locally
    if manual_dir is not None:
        archive = os.path.join(manual_dir, CIFAR10_ARCHIVE)
        if not os.path.isfile(archive):
            raise DatasetUnavailable(f"`manual_dir` {manual_dir!r} has no {CIFAR10_ARCHIVE}. {OFFLINE_HELP}")
        return
    url = urllib.parse.urlsplit(CIFAR10_URL)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise DatasetUnavailable(f"CIFAR-10 is not prepared and {url.hostname} cannot be reached ({error}). "
                                 f"{OFFLINE_HELP}") from error


def prepare(dataset, image_size, data_dir=None, manual_dir=None):
    """Builds the dataset on disk if needed (downloads CIFAR-10 unless ``manual_dir`` holds its archive).

    Safe when several processes start at once (tuner workers, multi-worker training): on a local ``data_dir`` the
    first one builds while the others wait on a lock file beside the dataset, then find it built. Without the lock
    tfds lets each process build its own copy and all but the first fail on the final rename (``FileExistsError``).
    """
    name = builder_name(dataset, image_size)
    config = tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False) if manual_dir else None
    builder = tfds.builder(name, data_dir=data_dir)
    target = os.fspath(builder.data_dir)
    if tf.io.gfile.exists(os.path.join(target, "dataset_info.json")):  # local or remote (gs://) storage
        return builder  # already built: nothing to download, nothing to guard
    _check_source_reachable(dataset, manual_dir)
    if "://" in target:  # remote storage: no local lock file
        return _download_and_prepare(builder, config)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            builder = tfds.builder(name, data_dir=data_dir)  # anew: another process may have built it meanwhile
            return _download_and_prepare(builder, config)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _download_and_prepare(builder, config):
    """``builder.download_and_prepare``, with a download or checksum failure turned into what to do about it."""
    try:
        builder.download_and_prepare(download_config=config)
    except (OSError, tfds.download.DownloadError, NonMatchingChecksumError) as error:
        raise DatasetUnavailable(f"Could not prepare {builder.name} under {builder.data_dir} "
                                 f"({type(error).__name__}: {str(error).strip()[:300]}). {OFFLINE_HELP}") from error
    return builder


def _whole_split(dataset, split, image_size, data_dir, manual_dir):
    builder = prepare(dataset, image_size, data_dir, manual_dir)
    try:
        chunks = list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False).batch(4096)))
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError, tf.errors.NotFoundError,
            tf.errors.FailedPreconditionError) as error:
        # a truncated or overwritten shard (DataLoss: bad record; InvalidArgument: a record that is not an example;
        # NotFound: a shard deleted by hand; FailedPrecondition: fewer examples than the dataset info records)
        message = str(error).strip().splitlines()[0][:200]
        raise DatasetUnavailable(f"the {split!r} split of {builder.name} in {builder.data_dir} cannot be read "
                                 f"({type(error).__name__}: {message}): a file of the prepared dataset is damaged "
                                 f"or missing. Delete {builder.data_dir} to build it again.") from None
    if not chunks:
        raise ValueError(f"Split {split!r} of {builder.name} is empty.")
    return _concatenate(chunks)


def _concatenate(chunks):
    """Concatenates a list of (nested dicts of) arrays along the first axis."""
    if isinstance(chunks[0], dict):
        return {key: _concatenate([chunk[key] for chunk in chunks]) for key in chunks[0]}
    return np.concatenate(chunks)


def load_images(dataset, split, image_size, data_dir=None, manual_dir=None):
    """A whole split as a uint8 array ``[N, H, W, 3]`` (pixel values 0..255), in the dataset's stored order."""
    images = _whole_split(dataset, split, image_size, data_dir, manual_dir)["image"]
    assert images.dtype == np.uint8, images.dtype
    return images


def load_factors(split, image_size, data_dir=None, dataset="shapes"):
    """The ``gd_shapes`` generative factors of a split: a dict of arrays aligned with :func:`load_images`."""
    examples = _whole_split(dataset, split, image_size, data_dir, None)
    return {key: value for key, value in examples.items() if key != "image"}


def training_batches(images, batch_size, steps_per_epoch, epochs, seed, start_step=0):
    """uint8 batches ``[batch_size, H, W, 3]`` for steps ``start_step .. epochs * steps_per_epoch - 1``.

    Epoch ``e`` takes the first ``steps_per_epoch * batch_size`` images of a permutation keyed by ``(seed, e)``;
    every batch is full (a replica split stays even). Resuming at ``start_step`` yields exactly the batches an
    uninterrupted run would have seen from there, without reading the ones before.
    """
    count = len(images)
    if steps_per_epoch * batch_size > count:
        raise ValueError(f"steps_per_epoch * batch_size = {steps_per_epoch} * {batch_size} exceeds the "
                         f"{count} images of the split.")
    total = epochs * steps_per_epoch
    if not 0 <= start_step <= total:
        raise ValueError(f"`start_step` must be in [0, {total}]. Received: start_step={start_step}")
    start_epoch, skipped = divmod(start_step, steps_per_epoch)
    seed = tf.constant(seed, tf.int64)

    def epoch_order(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), seed=tf.stack([seed, epoch]))
        return tf.data.Dataset.from_tensor_slices(order[:steps_per_epoch * batch_size])

    indices = (tf.data.Dataset.range(start_epoch, epochs).flat_map(epoch_order)
               .batch(batch_size, drop_remainder=True).skip(skipped))
    return _gather(images, indices)


def evaluation_batches(images, batch_size):
    """All images in stored order, in batches of ``batch_size`` (the last one may be smaller)."""
    return _gather(images, tf.data.Dataset.range(len(images)).batch(batch_size))


def _gather(images, indices):
    images = tf.constant(images)
    batches = indices.map(lambda index: tf.gather(images, index), num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    options = tf.data.Options()
    # Under a multi-worker strategy each worker reads the same index stream and keeps its part of every batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return batches.with_options(options).prefetch(tf.data.AUTOTUNE)
