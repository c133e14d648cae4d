"""Requests to an exported model, validated *before* anything is cast to the signature's dtypes.

Why: the SavedModel's signatures take uint8 images and int32 counts and seeds, and every road into them casts.
``tf.constant(np.array([300]), tf.uint8)``-style conversions and ``saved_model_cli`` wrap 300 to 44, truncate 100.5
to 100 and 2.5 to 2, turn NaN into 0, and wrap an int64 ``2**32 + 3`` to 3 -- past the signature's own checks,
which only see the cast values. The functions here refuse such values with a ``ValueError`` naming the input and
the accepted range, then cast.

    model = ExportedModel("saved_models/demo/1")           # a version folder written by trainers.export
    images = model.sample(num_samples=4, seed=[1, 2])        # uint8 numpy [4, H, W, 3]
    body = rest_request("sample", num_samples=4, seed=[1, 2])  # JSON body for TF Serving's REST :predict

TF Serving's REST layer (``tensorflow_serving/util/json_tensor.cc``, ``AddValueToTensor``; read, not run here: its
server binary is not in this machine's registries) rejects a JSON number that is not an integer in int32's range for
an int32 or uint8 input (so 2.5, NaN and ``2**32 + 3`` fail with "is not of expected type"), but stores any int32
value into a uint8 tensor unchecked: an image value of 300 arrives as 44 and -1 as 255, and the model cannot tell.
Build REST bodies with :func:`rest_request` (or validate with :func:`check_images`) to avoid that.
"""

import numbers
import os

import numpy as np

from gd_bottleneck.errors import DamagedFile
from gd_bottleneck.serving import MAX_IMAGES_PER_REQUEST

INT32_MIN, INT32_MAX = -2**31, 2**31 - 1


def _is_integer_value(value):
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_count(value, name="num_samples"):
    """An image count: an integer (not 2.5, not 2.0, not a bool) in [1, MAX_IMAGES_PER_REQUEST]; returns an int."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if not _is_integer_value(value):
        raise ValueError(f"Argument `{name}` must be an integer in [1, {MAX_IMAGES_PER_REQUEST}]. Received: "
                         f"{name}={value!r}")
    if not 1 <= int(value) <= MAX_IMAGES_PER_REQUEST:
        raise ValueError(f"Argument `{name}` must be in [1, {MAX_IMAGES_PER_REQUEST}]. Received: {name}={value!r}")
    return int(value)


def check_seed(seed, name="seed"):
    """A sampling seed: two integers, each in int32's range; returns an int32 numpy ``[2]`` (no wrap-around)."""
    values = np.asarray(seed, dtype=object) if not isinstance(seed, np.ndarray) else seed
    if values.shape != (2,) or not all(_is_integer_value(value) for value in values.tolist()):
        raise ValueError(f"Argument `{name}` must be two integers in [{INT32_MIN}, {INT32_MAX}]. Received: "
                         f"{name}={seed!r}")
    if not all(INT32_MIN <= int(value) <= INT32_MAX for value in values.tolist()):
        raise ValueError(f"Argument `{name}` must be two integers in [{INT32_MIN}, {INT32_MAX}] (int32). "
                         f"Received: {name}={seed!r}")
    return np.array([int(value) for value in values.tolist()], np.int32)


def check_images(images, image_size, name="images"):
    """A batch of images ``[n, image_size, image_size, 3]`` with integer values in [0, 255] (integral floats are
    accepted; NaN, fractions and values out of range are not) and n in [1, MAX_IMAGES_PER_REQUEST]; returns uint8."""
    array = np.asarray(images)
    if array.dtype.kind not in "iuf":
        raise ValueError(f"Argument `{name}` must hold numbers (integers in [0, 255]). Received dtype {array.dtype}.")
    if array.ndim != 4 or array.shape[1:] != (image_size, image_size, 3):
        raise ValueError(f"Argument `{name}` must have shape [n, {image_size}, {image_size}, 3] (this model's image "
                         f"size). Received shape {list(array.shape)}.")
    check_count(array.shape[0], f"{name}.shape[0]")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"Argument `{name}` must not hold NaN or infinite values.")
    if array.dtype.kind == "f" and not np.all(array == np.round(array)):
        bad = array[array != np.round(array)].flat[0].item()
        raise ValueError(f"Argument `{name}` must hold integer pixel values in [0, 255]. Received a value {bad!r}.")
    if array.size and (array.min() < 0 or array.max() > 255):
        bad = (array.min() if array.min() < 0 else array.max()).item()
        raise ValueError(f"Argument `{name}` must hold integer pixel values in [0, 255]. Received a value {bad!r}.")
    return array.astype(np.uint8)


class ExportedModel:
    """An exported version folder, loaded in this process, with validated calls to each signature.

    Outputs are numpy arrays. The loaded object is kept here: a signature of a SavedModel that was garbage-collected
    fails ("referencing variables which have been deleted").
    """

    def __init__(self, path):
        self.path = path
        import tensorflow as tf  # here, not at import: building and checking requests needs no TensorFlow
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise DamagedFile(f"{path} is not a SavedModel version folder (no saved_model.pb): give a version, e.g. "
                              "saved_models/<name>/<version>.")
        try:
            self.loaded = tf.saved_model.load(path)
            spec = self.loaded.signatures["encode"].structured_input_signature[1]["images"]
        except (OSError, ValueError, KeyError, tf.errors.OpError) as error:
            raise DamagedFile(f"{path} is an incomplete or damaged SavedModel version, or not one of this project's "
                              f"({type(error).__name__}: {str(error).strip().splitlines()[0][:200]}). Export the run "
                              "again (python -m trainers.export).") from None
        self.image_size = int(spec.shape[1])

    def _call(self, signature, **inputs):
        import tensorflow as tf  # already loaded by __init__
        outputs = self.loaded.signatures[signature](**{name: tf.constant(value) for name, value in inputs.items()})
        return {name: value.numpy() for name, value in outputs.items()}

    def sample(self, num_samples, seed):
        """uint8 ``[num_samples, H, W, 3]``: x ~ p(x | z), z ~ N(0, I); the same seed gives the same images."""
        return self._call("sample", num_samples=np.int32(check_count(num_samples)), seed=check_seed(seed))["images"]

    def reconstruct(self, images, seed):
        """uint8 ``[n, H, W, 3]``: z ~ q(z | images), then x ~ p(x | z)."""
        return self._call("reconstruct", images=check_images(images, self.image_size), seed=check_seed(seed))["images"]

    def encode(self, images):
        """``{"latent_mean", "latent_stddev"}``: the posterior q(z | images), float32 ``[n, l, l, c]``."""
        return self._call("encode", images=check_images(images, self.image_size))

    def elbo(self, images):
        """``{"elbo_bpd", "kl_bpd"}``: float32 ``[n]`` in bits/dim, test mode."""
        return self._call("elbo", images=check_images(images, self.image_size))


def rest_request(signature, image_size=None, **inputs):
    """The JSON body (a dict) of a TF Serving REST ``:predict`` request, in the columnar ``"inputs"`` form, after
    validating the inputs as :class:`ExportedModel` does (``image_size`` is needed for ``images``)."""
    checks = {"num_samples": check_count, "seed": check_seed,
              "images": lambda value: check_images(value, image_size)}
    unknown = set(inputs) - set(checks)
    if unknown:
        raise ValueError(f"Unknown inputs {sorted(unknown)}; the signatures take {sorted(checks)}.")
    if "images" in inputs and image_size is None:
        raise ValueError("Argument `image_size` is required with `images` (the model's image size).")
    values = {name: checks[name](value) for name, value in inputs.items()}
    return {"signature_name": signature,
            "inputs": {name: value.tolist() if isinstance(value, np.ndarray) else value
                       for name, value in values.items()}}
