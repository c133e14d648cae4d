"""Fault injection for tests: a full disk, simulated for real.

``RLIMIT_FSIZE`` makes every write past the limit fail with EFBIG inside whatever writes it -- TensorFlow's own C++
file writers included -- exactly where a full disk's ENOSPC would fail, so no library function has to be patched.
"""

import contextlib
import resource
import signal


@contextlib.contextmanager
def file_size_limit(limit):
    """Every file this process writes fails past ``limit`` bytes (EFBIG), as on a full disk."""
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
