"""How the project's command-line programs start quietly and end: a result, or one line that says what to fix.

``run(main)`` is ``absl.app.run(main)`` with two differences a user notices:
- a bad flag or argument (``app.UsageError``) prints ``ERROR: <message>`` and a pointer to ``--helpshort``, instead
  of absl's ~150 lines of flag help before the message (exit status 1, as absl);
- a problem found at run time that the user can fix (:class:`~gd_bottleneck.errors.UserError`: an existing run's
  settings, a missing dataset, a damaged checkpoint, a full disk) prints ``ERROR: <message>`` without a Python
  traceback (exit status 2). Anything else is a bug and keeps its traceback.
"""

import os
import sys

from absl import app, flags, logging

from gd_bottleneck.errors import UserError

USAGE_EXIT, USER_ERROR_EXIT = 1, 2


def _reporting(main, arguments):
    def wrapped(argv):
        logging.set_verbosity(logging.WARNING)  # TF's INFO chatter (checkpoint sharding, ...) hides our own lines
        try:
            if not arguments and len(argv) > 1:
                raise app.UsageError(f"Unexpected positional arguments: {argv[1:]}")
            return main(argv)
        except app.UsageError as error:
            print(f"ERROR: {error}\n(--helpshort lists this program's flags)", file=sys.stderr)
            sys.exit(USAGE_EXIT)
        except UserError as error:
            print(f"ERROR: {error}", file=sys.stderr)
            sys.exit(USER_ERROR_EXIT)
    return wrapped


def run(main, arguments=False):
    """Parses the flags and runs ``main(argv)`` (see the module docstring for how errors are reported); a command
    that takes no positional ``arguments`` refuses them with a usage error."""
    app.run(_reporting(main, arguments))


def trained_model_for_png(model_dir, out):
    """``(model, config, checkpoint)`` of the run in ``--model_dir`` for a command that writes the PNG ``out``;
    a missing folder, run or checkpoint, or an ``out`` that is not a .png, is a usage error naming the flag."""
    if not model_dir:
        raise app.UsageError("Flag --model_dir is required.")
    if not out.lower().endswith(".png"):
        raise app.UsageError(f"Flag --out must name a .png file. Received: {out!r}")
    from gd_bottleneck.training.checkpoints import load_trained_model  # the model stack, only when a command runs

    try:
        return load_trained_model(model_dir)
    except FileNotFoundError as error:
        raise app.UsageError(str(error).replace("`model_dir`", "--model_dir"))


def define_flag(define, name, *args, **kwargs):
    """``define(name, *args, **kwargs)`` (an ``absl.flags.DEFINE_*``) unless a flag ``name`` exists already.

    Commands that import each other's functions (``tuning.frontier``, ``tuning.curves``, ``tuning.probe``) share
    flags of the same name and meaning (``--out``, ``--csv``, ``--floor``); defining each one once lets their flags
    live in one process, as in the tests, where absl would otherwise refuse the second definition."""
    if name not in flags.FLAGS:
        define(name, *args, **kwargs)


def quiet_tensorflow_start():
    """Imports TensorFlow with stderr muted (no-op if it is already imported or GD_VERBOSE_TF=1).

    Why this and not ``TF_CPP_MIN_LOG_LEVEL=3``: TensorFlow 2.21 writes its start-up lines (the oneDNN notice, the CUDA
    driver probes and their ``cuInit`` error on machines without a GPU, "All log messages before absl::InitializeLog()
    is called are written to STDERR") through absl logging *before* ``absl::InitializeLog()``, which ignores that
    variable (measured; tensorflow/tensorflow#102212). They are all written while TensorFlow is imported and its
    platforms are probed, so :func:`quiet_tensorflow_start` points file descriptor 2 at /dev/null for exactly that
    window and restores it: every later line (this project's messages, TensorFlow's own errors, Python tracebacks)
    reaches the terminal. Listing the physical devices does not initialise them, so ``--cpu_replicas`` still works.

    The packages of the command-line programs (trainers, tuning, benchmarks, examples, studies) call it when imported,
    before anything imports TensorFlow; the library itself never calls it, and never touches a user's stderr.
    """
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
