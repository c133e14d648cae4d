"""SavedModel export of a trained HybridVAE for TF Serving: ``<base>/<integer version>/``, written atomically.

TF Serving polls a model base path and loads the highest integer version. A version is first written to a hidden
temporary folder next to the versions and then renamed into place, so a poller never sees a half-written version; an
existing version is never overwritten (the next free integer is used).

Signatures (images are uint8 ``[n, H, W, 3]``, H = W = the model's image_size; seeds are int32 ``[2]``):
    sample (= serving_default)  num_samples int32 scalar, seed -> images uint8 [num_samples, H, W, 3]
    reconstruct                 images, seed -> images uint8 [n, H, W, 3]   (z ~ q(z | images), then p(x | z))
    encode                      images -> latent_mean, latent_stddev [n, l, l, c]   the posterior q(z | x)
    elbo                        images -> elbo_bpd [n], kl_bpd [n]   test mode (no bottleneck noise), bits/dim

Each version carries ``assets.extra/tf_serving_warmup_requests``: one ``sample`` request (1 image) that TF Serving
replays when it loads the version, so the first real request does not pay the sampler's graph optimisation, and
``assets.extra/gd_bottleneck_run.json``: which run wrote it (its folder and settings). A model folder belongs to one
run: TF Serving switches to a folder's newest version at its next poll, so exporting another run there (another
image size, another bottleneck) would silently change the model being served; it is refused unless forced.

Sampling uses the cached sampler; image b of a request with seed s is the same whatever the request's size. The
SavedModel is plain TensorFlow: it loads without this package. Requests with ``num_samples`` or ``n`` outside
``[1, MAX_IMAGES_PER_REQUEST]`` fail with INVALID_ARGUMENT; wrong dtypes or shapes are rejected by the signature.
"""

import json
import os
import shutil
import socket
import uuid

import keras
import tensorflow as tf

from gd_bottleneck import sampling
from gd_bottleneck.errors import ExportError
from gd_bottleneck.serving import MAX_IMAGES_PER_REQUEST

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
RUN_FILE = os.path.join("assets.extra", "gd_bottleneck_run.json")


def existing_versions(base_dir):
    """Sorted integer versions present under ``base_dir``."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(int(name) for name in os.listdir(base_dir) if name.isdigit())


def _claimed_versions(base_dir):
    return [int(name[len(".claim-"):]) for name in os.listdir(base_dir) if name.startswith(".claim-")]


def _check_count(count, name):
    """An assertion that ``count`` (int32 scalar) is in [1, MAX_IMAGES_PER_REQUEST] (INVALID_ARGUMENT otherwise)."""
    valid = tf.logical_and(count >= 1, count <= MAX_IMAGES_PER_REQUEST)
    return tf.debugging.Assert(valid, [f"`{name}` must be in [1, {MAX_IMAGES_PER_REQUEST}]. Received:", count])


def _checked_images(images, size):
    """``images`` once their batch size is in [1, MAX_IMAGES_PER_REQUEST] and their shape is ``[n, size, size, 3]``.

    The input signature alone is not enough: when a call does not match it, TensorFlow falls back to calling the
    graph with the tensor as given, and a wrongly sized batch then fails wherever a kernel first trips over it
    (measured: an oneDNN "could not create a primitive descriptor" AbortedError in the decoder). These checks run
    before anything reads the images and fail with INVALID_ARGUMENT and a message that names the problem.
    """
    shape = tf.shape(images)
    right_size = tf.reduce_all(tf.equal(shape[1:], [size, size, 3]))
    checks = [_check_count(shape[0], "images.shape[0]"),
              tf.debugging.Assert(right_size, [f"`images` must have shape [n, {size}, {size}, 3] (this model's image "
                                               "size). Received shape:", shape])]
    with tf.control_dependencies(checks):
        return tf.identity(images)


def _endpoints(model):
    """The signature functions, ``sample`` first (``write_out`` aliases the first endpoint as serving_default)."""
    size = model.config.image_size
    images_spec = tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")
    seed_spec = tf.TensorSpec([2], tf.int32, name="seed")

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="num_samples"), seed_spec])
    def sample(num_samples, seed):
        with tf.control_dependencies([_check_count(num_samples, "num_samples")]):
            z = sampling.prior_latents(model, seed, num_samples)
        return {"images": sampling.cached_samples(model, z, seed)}

    @tf.function(input_signature=[images_spec, seed_spec])
    def reconstruct(images, seed):
        return {"images": sampling.reconstructions(model, _checked_images(images, size), seed)}

    @tf.function(input_signature=[images_spec])
    def encode(images):
        mean, stddev = model.encode(_checked_images(images, size))
        return {"latent_mean": mean, "latent_stddev": stddev}

    @tf.function(input_signature=[images_spec])
    def elbo(images):
        figures = model.elbo(_checked_images(images, size))
        return {"elbo_bpd": figures["elbo_bpd"], "kl_bpd": figures["kl_bpd"]}

    return {"sample": sample, "reconstruct": reconstruct, "encode": encode, "elbo": elbo}


STAGING_PREFIX = ".incomplete-"


def _staging_name():
    """``.incomplete-<host>-<pid>-<random>``: unique, and tells :func:`remove_abandoned_staging` whose it is."""
    return f"{STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _process_alive(pid):
    try:
        os.kill(pid, 0)  # PermissionError means alive, another user's: only a missing process says "gone"
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def remove_abandoned_staging(base_dir):
    """Deletes the staging folders of exports on this host whose process is gone (killed mid-write); returns them.

    Folders of live processes (a concurrent export) and of other hosts (a shared file system) are left alone.
    """
    removed = []
    host = socket.gethostname()
    for name in os.listdir(base_dir) if os.path.isdir(base_dir) else []:
        if not name.startswith(STAGING_PREFIX):
            continue
        owner, _, pid = name[len(STAGING_PREFIX):].rpartition("-")[0].rpartition("-")  # host may hold "-"
        if owner == host and pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(os.path.join(base_dir, name), ignore_errors=True)
            removed.append(name)
    return removed


def write_warmup_requests(version_dir):
    """Writes TF Serving's warm-up file: a TFRecord of ``PredictionLog`` protos, here one ``sample`` request for
    one image with seed [0, 0] (the proto classes come from tensorflow-serving-api)."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name="sample"))
    request.inputs["num_samples"].CopyFrom(tf.make_tensor_proto(1, tf.int32))
    request.inputs["seed"].CopyFrom(tf.make_tensor_proto([0, 0], tf.int32))
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    path = os.path.join(version_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(log.SerializeToString())


def version_runs(base_dir):
    """``{version: the run folder that wrote it, or None when the version does not say}`` under ``base_dir``."""
    runs = {}
    for version in existing_versions(base_dir):
        path = os.path.join(base_dir, str(version), RUN_FILE)
        try:
            with open(path) as stream:
                runs[version] = json.load(stream)["model_dir"]
        except (OSError, ValueError, KeyError, TypeError):  # unreadable: the version does not say (None)
            runs[version] = None
    return runs


def check_model_folder(base_dir, run):
    """Refuses (:class:`~gd_bottleneck.errors.ExportError`) to add ``run``'s version (``run["model_dir"]``) to a
    model folder whose versions another run wrote, or whose versions do not say which run wrote them."""
    others = {version: owner for version, owner in version_runs(base_dir).items() if owner != run["model_dir"]}
    if others:
        owners = sorted({owner or "an unknown run" for owner in others.values()})
        raise ExportError(f"The model folder {base_dir} holds versions {sorted(others)} of {', '.join(owners)}; "
                          f"adding {run['model_dir']}'s would make TF Serving switch models at its next poll. Export "
                          "into another folder (--export_dir), or force it (trainers.export --force).")


def export_saved_model(model, base_dir, run=None, force=False):
    """Writes ``model`` as the next version under ``base_dir`` and returns the version's path.

    ``run``: the identity of the run being exported, ``{"model_dir": absolute path, "config": its settings}``,
    written into the version (``RUN_FILE``); with it, a folder holding another run's versions is refused unless
    ``force``. The version folder gets the usual umask-based permissions (readable by a TF Serving process running
    as another user when the umask allows it). A write that fails (a full disk, say) raises
    :class:`~gd_bottleneck.errors.ExportError` and leaves no partial folder; existing versions are never touched.
    """
    if run is not None and not force:
        check_model_folder(base_dir, run)
    os.makedirs(base_dir, exist_ok=True)
    remove_abandoned_staging(base_dir)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, function in _endpoints(model).items():
        archive.add_endpoint(name, function)
    staging = os.path.join(base_dir, _staging_name())
    os.mkdir(staging)  # not tempfile.mkdtemp: its 0700 mode would survive the rename and hide the version
    try:
        try:
            archive.write_out(staging, verbose=False)
            write_warmup_requests(staging)
            if run is not None:
                with open(os.path.join(staging, RUN_FILE), "w") as stream:
                    json.dump(run, stream, indent=2, sort_keys=True)
        except (OSError, tf.errors.OpError) as error:
            raise ExportError(f"Could not write a SavedModel under {base_dir} ({type(error).__name__}: "
                              f"{str(error).strip().splitlines()[-1][:200]}); is the disk full? Existing versions "
                              f"{existing_versions(base_dir)} are untouched.") from error
        while True:
            claimed = existing_versions(base_dir) + _claimed_versions(base_dir)
            version = max(claimed, default=0) + 1
            claim = os.path.join(base_dir, f".claim-{version}")
            try:  # O_EXCL: of two concurrent writers only one gets this version
                os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            try:
                target = os.path.join(base_dir, str(version))
                os.rename(staging, target)  # atomic; target does not exist
                return target
            finally:
                os.remove(claim)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
