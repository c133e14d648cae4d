"""The search space: which trainer settings a search varies, parsed from ``--tune_<field>`` specs.

A spec is either a list of values, ``"0.05,0.15,0.5"`` (a ``Choice``: what grid search enumerates), or a range
``"1e-4:1e-2"`` / ``"1e-4:1e-2:log"`` (a ``Float``/``Int`` drawn uniformly or log-uniformly: for random, Bayesian and
Hyperband search). Settings without a spec keep the trainer flag's value in every trial.

The bottleneck kind is a hyper-parameter too, and ``dropout_rate`` / ``beta`` / ``aux_weight`` only exist under the
kinds that use them (KerasTuner conditional scopes), so a grid over ``--tune_bottleneck`` x ``--tune_dropout_rate`` x
``--tune_beta`` enumerates each rate once under Gaussian dropout and each beta once under the variational bottleneck,
instead of the full product.
"""

import dataclasses

from tuning import families

# Settings a search can vary: (type, the strength argument whose families it exists under, or None for all).
TUNABLE = {
    "bottleneck": (str, None),
    "dropout_rate": (float, "dropout_rate"),
    "beta": (float, "beta"),
    "aux_weight": (float, "aux_weight"),
    "learning_rate": (float, None),
    "pixelcnn_filters": (int, None),
    "resnet_channels": (int, None),
    "seed": (int, None),
}
MODEL_FIELDS = ("pixelcnn_filters", "resnet_channels")


@dataclasses.dataclass(frozen=True)
class Tunable:
    """One varied setting: ``values`` (a Choice) or ``low``/``high``/``log`` (a range)."""

    name: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    log: bool = False

    @property
    def kind_condition(self):
        """The families under which this setting exists (their strength), or None: under all."""
        argument = TUNABLE[self.name][1]
        return families.using(argument) if argument else None

    def declare(self, hp):
        """Registers the hyper-parameter on ``hp`` and returns its value in this trial."""
        kind = TUNABLE[self.name][0]
        if self.values:
            return hp.Choice(self.name, list(self.values))
        sampling = "log" if self.log else "linear"
        if kind is int:
            return hp.Int(self.name, int(self.low), int(self.high), sampling=sampling)
        return hp.Float(self.name, self.low, self.high, sampling=sampling)


def _convert(text, kind, flag):
    try:
        return kind(text) if kind is not int else int(text, 10)
    except ValueError:
        raise ValueError(f"Flag `--{flag}` has {text!r}, which is not a {kind.__name__}.") from None


def parse(name, spec):
    """The :class:`Tunable` of ``--tune_<name>=<spec>`` (``ValueError`` naming the flag on a bad spec)."""
    flag = f"tune_{name}"
    if name not in TUNABLE:
        raise ValueError(f"`{name}` cannot be tuned; the tunable settings are {sorted(TUNABLE)}.")
    kind = TUNABLE[name][0]
    spec = spec.strip()
    if ":" in spec:
        if kind is str:
            raise ValueError(f"Flag `--{flag}` takes a list of values, e.g. {','.join(families.names()[:2])}. "
                             f"Received: {spec!r}")
        parts = spec.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            raise ValueError(f"Flag `--{flag}` range must be LOW:HIGH or LOW:HIGH:log. Received: {spec!r}")
        low, high = (_convert(part, kind, flag) for part in parts[:2])
        if not low < high:
            raise ValueError(f"Flag `--{flag}` range needs LOW < HIGH. Received: {spec!r}")
        if len(parts) == 3 and low <= 0:
            raise ValueError(f"Flag `--{flag}` log range needs LOW > 0. Received: {spec!r}")
        return Tunable(name, low=low, high=high, log=len(parts) == 3)
    values = tuple(_convert(part.strip(), kind, flag) for part in spec.split(",") if part.strip())
    if not values:
        raise ValueError(f"Flag `--{flag}` is empty; give values (a,b,c) or a range (LOW:HIGH[:log]).")
    if len(set(values)) != len(values):
        raise ValueError(f"Flag `--{flag}` lists a value twice. Received: {spec!r}")
    if name == "bottleneck":
        unknown = [value for value in values if value not in families.names()]
        if unknown:
            raise ValueError(f"Flag `--{flag}` values must be in {list(families.names())}. Received: {unknown}")
    return Tunable(name, values=values)


def parse_all(specs):
    """``{name: spec or None}`` -> the list of Tunables in declaration order (``bottleneck`` first, ``seed`` last, so
    grid search varies the seed fastest and the kind slowest)."""
    return [parse(name, specs[name]) for name in TUNABLE if specs.get(name)]
