"""Test set-up: split the host CPU into 2 logical devices before TensorFlow initializes its devices.

This must run before any TF op (afterwards "Virtual devices cannot be modified"), which is why it lives at the top
of conftest.py. It lets `MirroredStrategy` tests run 2 replicas on one CPU; single-device code is unaffected (it
uses the first logical CPU).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

NUM_LOGICAL_CPUS = 2
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * NUM_LOGICAL_CPUS)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def two_replicas():
    """One MirroredStrategy over the 2 logical CPUs for the whole session.

    Separate MirroredStrategy objects in one process reuse collective instance keys, so a second strategy's
    all-reduce can collide with the first's ("Shape mismatch in the collective instance"); sharing one avoids it.
    """
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(NUM_LOGICAL_CPUS)])


from tests.shapes_data import shapes_data_dir  # noqa: E402,F401  (fixture shared by data and training tests)
