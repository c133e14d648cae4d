"""tf.distribute strategies by name, and splitting the host CPU into logical devices (to test replicas on a CPU)."""

import json
import os

import tensorflow as tf


def split_cpu(replicas):
    """Makes the first CPU appear as ``replicas`` logical devices. Must run before TensorFlow initializes devices."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError as error:
        raise RuntimeError(f"cpu_replicas={replicas}: TensorFlow's devices are already initialized in this process; "
                           "split the CPU before running any TensorFlow op.") from error


def set_intra_op_threads(threads):
    """Limits each TensorFlow op to ``threads`` threads (0 leaves TensorFlow's default). Must run before TensorFlow
    runs its first op, unless the process already uses that number.

    Why a setting: a small model's ops are too small to split well across cores, and TensorFlow's inter-op pool
    already runs independent ops (PixelCNN++'s two streams, the VAE beside them) side by side."""
    if threads == 0 or tf.config.threading.get_intra_op_parallelism_threads() == threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError as error:
        raise RuntimeError(f"intra_op_threads={threads}: TensorFlow has already run ops in this process with "
                           f"{tf.config.threading.get_intra_op_parallelism_threads() or 'its default'} threads per "
                           "op; set it before running any TensorFlow op (a new process).") from error


def make_strategy(name, cpu_replicas=0):
    """``default`` (one device), ``mirrored`` (all local GPUs, or the logical CPUs) or ``multi_worker`` (TF_CONFIG)."""
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy=multi_worker needs the TF_CONFIG environment variable (cluster and task).")
        communication = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=communication)
        if cpu_replicas > 1:
            raise ValueError("cpu_replicas > 1 is not supported with strategy=multi_worker (one replica per worker).")
        return strategy
    if cpu_replicas > 0:
        split_cpu(cpu_replicas)
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def is_chief():
    """True on the worker that writes results, exports and the real checkpoints (always true without TF_CONFIG)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    cluster = config.get("cluster", {})
    kind, index = task.get("type", "chief"), task.get("index", 0)
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
