"""The one Keras backend this library runs on, checked where the Keras code is imported."""

import keras


def require_tensorflow_backend():
    """``ImportError`` with what to do when Keras runs another backend (tf.distribute and TFP need TensorFlow)."""
    if keras.backend.backend() != "tensorflow":
        raise ImportError(
            f"gd_bottleneck needs the Keras 'tensorflow' backend; Keras is using {keras.backend.backend()!r}. "
            "Set KERAS_BACKEND=tensorflow before importing keras.")
