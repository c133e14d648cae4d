"""Keeps TensorFlow's C++ start-up lines off a command line's stderr (set GD_VERBOSE_TF=1 to see them).

Why this and not ``TF_CPP_MIN_LOG_LEVEL=3``: TensorFlow 2.21 writes its start-up lines (the oneDNN notice, the CUDA
driver probes and their ``cuInit`` error on machines without a GPU, "All log messages before absl::InitializeLog()
is called are written to STDERR") through absl logging *before* ``absl::InitializeLog()``, which ignores that
variable (measured; tensorflow/tensorflow#102212). They are all written while TensorFlow is imported and its
platforms are probed, so :func:`quiet_tensorflow_start` points file descriptor 2 at /dev/null for exactly that
window and restores it: every later line (this project's messages, TensorFlow's own errors, Python tracebacks)
reaches the terminal. Listing the physical devices does not initialise them, so ``--cpu_replicas`` still works.

The packages of the command-line programs (trainers, tuning, benchmarks, examples) call it when imported, before
anything imports TensorFlow; the library (gd_bottleneck) never touches a user's stderr.
"""

import os
import sys


def quiet_tensorflow_start():
    """Imports TensorFlow with stderr muted (no-op if it is already imported or GD_VERBOSE_TF=1)."""
    if os.environ.get("GD_VERBOSE_TF") == "1" or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # later C++ INFO/WARNING lines too
    sys.stderr.flush()
    saved, muted = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(muted, 2)
    try:
        import tensorflow as tf
        tf.config.list_physical_devices()  # the CUDA probe (cuInit) happens here
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(muted)
