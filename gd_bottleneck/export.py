"""SavedModel export of a trained HybridVAE for TF Serving: ``<base>/<integer version>/``, written atomically.

TF Serving polls a model base path and loads the highest integer version. A version is first written to a hidden
temporary folder next to the versions and then renamed into place, so a poller never sees a half-written version; an
existing version is never overwritten (the next free integer is used).

Signatures (inputs are uint8 images ``[n, H, W, 3]``):
    elbo     -> elbo_bpd [n], kl_bpd [n]                 test mode (no bottleneck noise), bits/dim
    encode   -> latent_mean, latent_stddev [n, l, l, c]  the posterior q(z | x)
"""

import os
import shutil
import tempfile

import keras
import tensorflow as tf


def existing_versions(base_dir):
    """Sorted integer versions present under ``base_dir``."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(int(name) for name in os.listdir(base_dir) if name.isdigit())


def _claimed_versions(base_dir):
    return [int(name[len(".claim-"):]) for name in os.listdir(base_dir) if name.startswith(".claim-")]


def _endpoints(model):
    size = model.config.image_size
    images_spec = tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")

    @tf.function(input_signature=[images_spec])
    def elbo(images):
        figures = model.elbo(images)
        return {"elbo_bpd": figures["elbo_bpd"], "kl_bpd": figures["kl_bpd"]}

    @tf.function(input_signature=[images_spec])
    def encode(images):
        mean, stddev = model.encode(images)
        return {"latent_mean": mean, "latent_stddev": stddev}

    return {"elbo": elbo, "encode": encode}


def export_saved_model(model, base_dir):
    """Writes ``model`` as the next version under ``base_dir`` and returns the version's path."""
    os.makedirs(base_dir, exist_ok=True)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, function in _endpoints(model).items():
        archive.add_endpoint(name, function)
    staging = tempfile.mkdtemp(dir=base_dir, prefix=".incomplete-")
    try:
        archive.write_out(staging, verbose=False)
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
