"""RunConfig: everything that defines a training run besides the code, validated before anything heavy starts.

The trainer CLI turns flags into a RunConfig field by field (same names), so an error message that names a field
also names the flag. A run writes its RunConfig to ``model_dir/run_config.json``; a rerun in the same ``model_dir``
resumes only if the fields that shape the model, the data order and the schedule are unchanged.
"""

import dataclasses
import os

from gd_bottleneck.config import PRESETS
from gd_bottleneck.data.pipeline import DATASETS, builder_name
from gd_bottleneck.errors import SettingsError
from gd_bottleneck.hybrid import BOTTLENECKS
from gd_bottleneck.validation import check_int, check_nonnegative, check_rate, check_seed

LR_SCHEDULES = ("exponential", "linear", "cosine", "constant")
STRATEGIES = ("default", "mirrored", "multi_worker")
# Fields a resumed run may change: where things are read and written, how often, on what hardware.
RESUMABLE_CHANGES = frozenset({"data_dir", "manual_dir", "model_dir", "export", "export_dir", "checkpoint_every",
                               "keep_checkpoints", "strategy", "cpu_replicas", "log_every", "progress",
                               "image_summaries", "eval_batch_size", "deterministic", "curve_points"})


SAVED_MODELS = "saved_models"


def default_export_base(model_dir):
    """``saved_models/<run name>``: TF Serving's ``--model_base_path`` for the run (versions 1, 2, ... inside)."""
    return f"{SAVED_MODELS}/{os.path.basename(os.path.normpath(model_dir))}"


def _choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"Argument `{name}` must be one of {list(choices)}. Received: {name}={value!r}")
    return value


def _positive(value, name):
    result = check_nonnegative(value, name)
    if result == 0.0:
        raise ValueError(f"Argument `{name}` must be a finite number > 0. Received: {name}={value!r}")
    return result


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A training run. Units: learning rates per step; steps are optimizer updates of one global batch."""

    model_dir: str
    dataset: str = "shapes"
    data_dir: str | None = None
    manual_dir: str | None = None  # folder with cifar-10-binary.tar.gz, for offline CIFAR-10
    image_size: int = 32
    model_preset: str = "small"
    model_overrides: dict = dataclasses.field(default_factory=dict)  # ModelConfig fields replacing the preset's
    bottleneck: str = "gaussian_dropout"
    dropout_rate: float | None = None
    beta: float | None = None
    aux_weight: float = 0.0
    batch_size: int = 64  # global, over all replicas
    eval_batch_size: int | None = None
    epochs: int = 1
    schedule_epochs: int | None = None  # learning-rate annealing horizon (>= epochs); default: epochs
    steps_per_epoch: int | None = None  # cap; default: the whole train split per epoch
    validation_examples: int = 0  # > 0: hold out the last N training images, evaluated at the end as validation_*
    curve_points: int = 0  # > 0: evaluate the held-out ELBO this many times, evenly spaced (model_dir/curve.jsonl)
    learning_rate: float = 1e-4
    final_learning_rate: float = 4e-6
    lr_schedule: str = "exponential"
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    seed: int = 0
    export: bool = True  # write a SavedModel version at the end
    export_dir: str | None = None  # default: saved_models/<run name> (TF Serving's model base path)
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    strategy: str = "default"
    cpu_replicas: int = 0  # > 0: split the host CPU into this many logical devices
    log_every: int = 50
    progress: str = "auto"  # "bar", "lines" or "auto" (bar on a terminal)
    image_summaries: int = 8  # images per TensorBoard grid (samples, reconstructions); 0 disables
    deterministic: bool = False  # tf.config.experimental.enable_op_determinism

    def __post_init__(self):
        if not isinstance(self.model_dir, str) or not self.model_dir:
            raise ValueError(f"Argument `model_dir` must be a non-empty path. Received: model_dir={self.model_dir!r}")
        _choice(self.dataset, "dataset", DATASETS)
        _choice(self.model_preset, "model_preset", sorted(PRESETS))
        _choice(self.bottleneck, "bottleneck", BOTTLENECKS)
        _choice(self.lr_schedule, "lr_schedule", LR_SCHEDULES)
        _choice(self.strategy, "strategy", STRATEGIES)
        _choice(self.progress, "progress", ("auto", "bar", "lines"))
        if self.bottleneck == "gaussian_dropout":
            if self.dropout_rate is None:
                raise ValueError("Argument `dropout_rate` is required with bottleneck=gaussian_dropout (in [0, 1)).")
            check_rate(self.dropout_rate, "dropout_rate")
        if self.bottleneck == "variational":
            if self.beta is None:
                raise ValueError("Argument `beta` is required with bottleneck=variational (a number >= 0).")
            check_nonnegative(self.beta, "beta")
        check_nonnegative(self.aux_weight, "aux_weight")
        for name in ("batch_size", "epochs", "checkpoint_every", "keep_checkpoints", "log_every"):
            check_int(getattr(self, name), name, 1)
        if self.schedule_epochs is not None and check_int(self.schedule_epochs, "schedule_epochs", 1) < self.epochs:
            raise ValueError(f"Argument `schedule_epochs` must be >= epochs={self.epochs} (the learning rate anneals "
                             f"over schedule_epochs). Received: schedule_epochs={self.schedule_epochs}")
        for name in ("eval_batch_size", "steps_per_epoch"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name, 1)
        check_int(self.cpu_replicas, "cpu_replicas", 0)
        check_int(self.validation_examples, "validation_examples", 0)
        check_int(self.image_summaries, "image_summaries", 0)
        check_int(self.curve_points, "curve_points", 0)
        check_seed(self.seed)
        _positive(self.learning_rate, "learning_rate")
        _positive(self.final_learning_rate, "final_learning_rate")
        _positive(self.adam_epsilon, "adam_epsilon")
        for name in ("adam_beta1", "adam_beta2"):
            check_rate(getattr(self, name), name)
        builder_name(self.dataset, self.image_size)  # the dataset exists at image_size (ValueError naming both)
        self.model_config()  # validates image_size and the overrides (ValueError naming the field)

    def model_config(self):
        """The :class:`ModelConfig`: the preset at ``image_size`` with ``model_overrides`` applied."""
        return PRESETS[self.model_preset](self.image_size).replace(**self.model_overrides)

    def model_kwargs(self):
        """Keyword arguments of :class:`HybridVAE` besides the config."""
        return {"bottleneck": self.bottleneck, "dropout_rate": self.dropout_rate, "beta": self.beta,
                "aux_weight": self.aux_weight, "seed": self.seed}

    @property
    def export_base(self):
        """Where versions go: ``export_dir``, or ``saved_models/<run name>`` (the run name is model_dir's last
        folder), relative to the working directory (the repository root for the documented commands)."""
        return self.export_dir or default_export_base(self.model_dir)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"Unknown RunConfig fields: {sorted(unknown)}.")
        return cls(**values)

    def check_resumable_from(self, saved):
        """Raises :class:`~gd_bottleneck.errors.SettingsError` (a ``ValueError``) listing the fields that differ from a saved run's and that a resume cannot change."""
        resumable = set(RESUMABLE_CHANGES)
        if self.schedule_epochs is not None and saved.get("schedule_epochs") == self.schedule_epochs:
            resumable.add("epochs")  # the schedule does not depend on epochs: a run can be extended (Hyperband)
        changed = {name: (saved.get(name), value) for name, value in self.to_dict().items()
                   if name not in resumable and saved.get(name) != value}
        if changed:
            details = ", ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in sorted(changed.items()))
            raise SettingsError(f"`model_dir` {self.model_dir!r} holds a run with different settings ({details}). "
                             "Use a new model_dir, or rerun with the original settings to resume.")


