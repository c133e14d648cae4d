"""Bottleneck kinds by name: the one place that maps the names used by flags, RunConfig and tuning to layer classes.

    create("gaussian_dropout", units=10, dropout_rate=0.15, seed=1)  -> GaussianDropoutBottleneck(0.15, seed=1)
    check_setting("variational", dropout_rate=None, beta=0.02)        -> validates without building anything

A class registers under its ``kind`` with :func:`register`; it says which setting holds its strength
(``strength_argument``: ``dropout_rate``, ``beta`` or none: also its constructor's argument) and how to build
itself for a model (``for_units``), so callers pass every strength setting they have and never compare kind names
themselves. The strength is validated once per road: by the layer's constructor for library callers, and by
:func:`check_setting` (the same check) where RunConfig must refuse a run before anything is written.
"""

from gd_bottleneck.bottlenecks import GaussianDropoutBottleneck, IdentityBottleneck, VariationalBottleneck

_REGISTRY = {}
STRENGTH_ARGUMENTS = ("dropout_rate", "beta")  # the settings that may hold a registered class's strength


def register(cls):
    """Adds a :class:`~gd_bottleneck.bottlenecks.Bottleneck` class under ``cls.kind``; returns it (a decorator)."""
    if cls.strength_argument not in (None, *STRENGTH_ARGUMENTS):
        raise ValueError(f"{cls.__name__}.strength_argument must be None or one of {STRENGTH_ARGUMENTS}.")
    _REGISTRY[cls.kind] = cls
    return cls


for _cls in (GaussianDropoutBottleneck, VariationalBottleneck, IdentityBottleneck):
    register(_cls)


def names():
    """The registered kinds, in registration order (the flag's choices)."""
    return tuple(_REGISTRY)


def get(kind):
    """The class registered as ``kind`` (``ValueError`` listing the kinds otherwise)."""
    if kind not in _REGISTRY:
        raise ValueError(f"Argument `bottleneck` must be one of {list(_REGISTRY)}. Received: bottleneck={kind!r}")
    return _REGISTRY[kind]


def check_setting(kind, **settings):
    """Validates ``kind`` and its strength among ``settings`` (``dropout_rate=..., beta=...``) with the layer's own
    check, without building it: RunConfig's early refusal (``ValueError`` naming the setting and its range)."""
    cls = get(kind)
    if cls.strength_argument:
        cls.check_strength(settings.get(cls.strength_argument))


def create(kind, units, seed=None, name="bottleneck", **settings):
    """The bottleneck layer of ``kind`` for inputs of ``units`` features, given its strength setting by name from
    ``settings`` (the others are ignored); the layer's constructor validates it (the one check on this road)."""
    cls = get(kind)
    strength = {cls.strength_argument: settings.get(cls.strength_argument)} if cls.strength_argument else {}
    return cls.for_units(units, seed=seed, name=name, **strength)
