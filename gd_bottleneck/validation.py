"""Argument checks shared by the library's public constructors and functions.

Every check raises ``ValueError`` whose message names the argument, the accepted range and the value received, so a
bad hyper-parameter fails at construction time instead of as a NaN many steps later.
"""

import math
import numbers
import random

import numpy as np


def _require_real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"Argument `{name}` must be a real number. Received: {name}={value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"Argument `{name}` must not be NaN. Received: {name}={value!r}")
    return value


def check_rate(rate, name="rate"):
    """Returns ``rate`` as a float after checking it is a dropout rate in ``[0, 1)``."""
    value = _require_real(rate, name)
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"Argument `{name}` must be in the range [0, 1) (1 would mean infinite noise). Received: {name}={rate!r}")
    return value


def check_nonnegative(value, name):
    """Returns ``value`` as a float after checking it is finite and ``>= 0``."""
    result = _require_real(value, name)
    if not 0.0 <= result < math.inf:
        raise ValueError(f"Argument `{name}` must be a finite number >= 0. Received: {name}={value!r}")
    return result


def check_int(value, name, minimum):
    """Returns ``value`` as an int after checking it is an integer ``>= minimum`` (integral floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(f"Argument `{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(f"Argument `{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def check_seed(seed, name="seed"):
    """Returns a concrete int seed in ``[0, 2**31)``; ``None`` draws one, so configs always record the seed used."""
    if seed is None:
        return random.SystemRandom().randrange(2**31)
    value = check_int(seed, name, minimum=0)
    if value >= 2**31:
        raise ValueError(f"Argument `{name}` must be an integer in [0, 2**31). Received: {name}={seed!r}")
    return value
