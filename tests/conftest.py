"""Test set-up: split the host CPU into 2 logical devices before TensorFlow initializes its devices.

This must run before any TF op (afterwards "Virtual devices cannot be modified"), which is why it lives at the top
of conftest.py. It lets `MirroredStrategy` tests run 2 replicas on one CPU; single-device code is unaffected (it
uses the first logical CPU).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One intra-op thread per test process (and the trainer subprocesses, which inherit it): `make test` runs 2 pytest
# workers on 2 cores, so TensorFlow's default of one thread per core oversubscribes them. Measured with the machine
# fully loaded (AMD EPYC, 2 cores): tests/test_hybrid.py + test_sampling.py took 457 / 445 s against 472 / 479 s
# with the default, and the trainer-CLI module 183 against 194 s. Inter-op threads stay at the default: the
# 2-replica tests need both logical devices' collectives to run at once.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

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

# The files that take longest go first, longest first (measured with --durations: the GPU check's dry run ~3 min, the
# bounds ~3 min in all, the hybrid model's tests ~3 min, export ~2.5 min, the trainer-CLI runs ~2 min, ...). With
# `-n 2 --dist loadfile` a file runs whole on one worker, in collection order, so a long file collected last would
# leave the other worker idle at the end.
LONGEST_FIRST = ("test_benchmarks.py", "test_evaluation.py", "test_hybrid.py", "test_export.py", "test_trainer_cli.py",
                 "test_training.py", "test_photos.py", "test_reliability.py", "test_sampling.py", "test_tuning.py",
                 "test_precision.py", "test_polyak.py", "test_distributions.py", "test_trainer_flags.py",
                 "test_extend.py", "test_pixelcnn.py", "test_noisy_evaluation.py", "test_data.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = os.path.basename(str(item.fspath))
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
    items.sort(key=rank)  # stable: the order within a file is kept
