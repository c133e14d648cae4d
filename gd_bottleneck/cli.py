"""How the project's command-line programs end: a result, or one line that says what to fix.

``run(main)`` is ``absl.app.run(main)`` with two differences a user notices:
- a bad flag or argument (``app.UsageError``) prints ``ERROR: <message>`` and a pointer to ``--helpshort``, instead
  of absl's ~150 lines of flag help before the message (exit status 1, as absl);
- a problem found at run time that the user can fix (:class:`~gd_bottleneck.errors.UserError`: an existing run's
  settings, a missing dataset, a damaged checkpoint, a full disk) prints ``ERROR: <message>`` without a Python
  traceback (exit status 2). Anything else is a bug and keeps its traceback.
"""

import sys

from absl import app, flags

from gd_bottleneck.errors import UserError

USAGE_EXIT, USER_ERROR_EXIT = 1, 2


def _reporting(main):
    def wrapped(argv):
        try:
            return main(argv)
        except app.UsageError as error:
            print(f"ERROR: {error}\n(--helpshort lists this program's flags)", file=sys.stderr)
            sys.exit(USAGE_EXIT)
        except UserError as error:
            print(f"ERROR: {error}", file=sys.stderr)
            sys.exit(USER_ERROR_EXIT)
    return wrapped


def run(main):
    """Parses the flags and runs ``main(argv)`` (see the module docstring for how errors are reported)."""
    app.run(_reporting(main))


def define_flag(define, name, *args, **kwargs):
    """``define(name, *args, **kwargs)`` (an ``absl.flags.DEFINE_*``) unless a flag ``name`` exists already.

    Commands that import each other's functions (``tuning.frontier``, ``tuning.curves``, ``tuning.probe``) share
    flags of the same name and meaning (``--out``, ``--csv``, ``--floor``); defining each one once lets their flags
    live in one process, as in the tests, where absl would otherwise refuse the second definition."""
    if name not in flags.FLAGS:
        define(name, *args, **kwargs)
