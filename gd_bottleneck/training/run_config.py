"""RunConfig: everything that defines a training run besides the code, validated before anything heavy starts.

The trainer's flags are generated from these fields (trainers/run_flags.py: same names, defaults, help texts and
choices, from each field's metadata), so an error message that names a field also names the flag. A run writes
its RunConfig to ``model_dir/run_config.json``; a rerun in the same ``model_dir``
resumes only if the fields that shape the model, the data order and the schedule are unchanged.
"""

import dataclasses
import hashlib
import os

from gd_bottleneck import bottleneck_registry
from gd_bottleneck.config import PRESETS, setting
from gd_bottleneck.data.pipeline import DATASETS, builder_name
from gd_bottleneck.errors import SettingsError
from gd_bottleneck.validation import check_int, check_nonnegative, check_rate, check_seed

LR_SCHEDULES = ("exponential", "linear", "cosine", "constant")
STRATEGIES = ("default", "mirrored", "multi_worker")
PROGRESS = ("auto", "bar", "lines")
# Fields a resumed run may change: where things are read and written, how often, on what hardware.
RESUMABLE_CHANGES = frozenset({"data_dir", "manual_dir", "model_dir", "export", "export_dir", "checkpoint_every",
                               "keep_checkpoints", "strategy", "cpu_replicas", "log_every", "progress",
                               "image_summaries", "eval_batch_size", "deterministic", "curve_points",
                               "intra_op_threads"})


SAVED_MODELS = "saved_models"


def default_export_base(model_dir):
    """``saved_models/<run name>-<8 hex digits>``: TF Serving's ``--model_base_path`` for the run (versions 1, 2, ...
    inside). The digits hash the run folder's absolute path, so two runs whose folders end in the same name
    (``/x/a/demo`` and ``/x/b/demo``, every search trial's ``run``) never share a model folder."""
    folder = os.path.abspath(model_dir)
    digest = hashlib.sha256(folder.encode()).hexdigest()[:8]
    return f"{SAVED_MODELS}/{os.path.basename(folder)}-{digest}"


def run_identity(config):
    """What an export records about the run that wrote it (``gd_bottleneck.export.RUN_FILE``)."""
    return {"model_dir": os.path.abspath(config.model_dir), "config": config.to_dict()}


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

    model_dir: str = setting(None, "Where checkpoints, TensorBoard logs and results.json go (required).")
    dataset: str = setting("shapes", "Training data: the embedded procedural 'shapes' dataset ('shapes_tiny': 8x8, "
                           "for tests), 'photos' (patches of the photographs installed packages ship, split by "
                           "photograph), or CIFAR-10 through tfds.", DATASETS)
    data_dir: str | None = setting(None, "tfds data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).")
    manual_dir: str | None = setting(None, "Folder holding cifar-10-binary.tar.gz for offline CIFAR-10 preparation.")
    image_size: int = setting(32, "Image side in pixels (cifar10: 32; shapes: 32, 16 or 8; photos: 16 or 32).")
    model_preset: str = setting("small", "Model size: the paper's (appendix B) or small.", sorted(PRESETS))
    model_overrides: dict = setting({}, "ModelConfig fields replacing the preset's (one flag per field).")
    bottleneck: str = setting("gaussian_dropout", "Information bottleneck on the PixelCNN++ output v.",
                              bottleneck_registry.names())
    dropout_rate: float | None = setting(None, "Gaussian dropout rate p in [0, 1); noise stddev sqrt(p / (1 - p)).")
    beta: float | None = setting(None, "Weight (>= 0) of the variational bottleneck's KL penalty.")
    aux_weight: float = setting(0.0, "Weight (>= 0) of the auxiliary non-autoregressive decoder's NLL; 0 = none.")
    batch_size: int = setting(64, "Global batch size (over all replicas).")
    eval_batch_size: int | None = setting(None, "Test-set batch size (default: batch_size).")
    epochs: int = setting(1, "Training epochs.")
    schedule_epochs: int | None = setting(None, "Epochs over which the learning rate anneals (default: --epochs); "
                                          "later epochs train at --final_learning_rate. A resume may change --epochs "
                                          "if the annealing stays the same: a finished run can be extended.")
    steps_per_epoch: int | None = setting(None, "Cap on the steps of an epoch (default: the whole train split).")
    validation_examples: int = setting(0, "Hold out this many of the last training images as a validation split, "
                                       "evaluated at the end (validation_* in results.json); 0: none.")
    curve_points: int = setting(0, "Evaluate the held-out ELBO and KL this many times during training, evenly spaced "
                                "(validation split if any, else test), into model_dir/curve.jsonl; 0: only at the end.")
    learning_rate: float = setting(1e-4, "Adam learning rate at the first step.")
    final_learning_rate: float = setting(4e-6, "Learning rate reached at the last step.")
    lr_schedule: str = setting("exponential", "How the rate anneals (exponential: geometric).", LR_SCHEDULES)
    adam_beta1: float = setting(0.9, "Adam beta_1.")
    adam_beta2: float = setting(0.999, "Adam beta_2.")
    adam_epsilon: float = setting(1e-8, "Adam epsilon.")
    polyak_decay: float = setting(0.0, "Polyak averaging: evaluate and export a moving average of the weights with "
                                  "this decay per step (PixelCNN++: 0.9995), in [0, 1); 0: the last weights.")
    seed: int = setting(0, "Seed of the weights, the noise streams and the data order, in [0, 2**31).")
    export: bool = setting(True, "Write a SavedModel version at the end (--noexport skips it).")
    export_dir: str | None = setting(None, "SavedModel base folder; versions 1, 2, ... (default: "
                                     "saved_models/<run name>-<hash of the run folder's path>).")
    checkpoint_every: int = setting(500, "Save a checkpoint every this many steps.")
    keep_checkpoints: int = setting(3, "How many checkpoints to keep.")
    strategy: str = setting("default", "tf.distribute strategy; multi_worker reads TF_CONFIG.", STRATEGIES)
    cpu_replicas: int = setting(0, "Split the host CPU into this many logical devices (testing replicas).")
    log_every: int = setting(50, "Progress line and TensorBoard scalars every this many steps.")
    progress: str = setting("auto", "Keras progress bar or log lines (auto: bar on a tty).", PROGRESS)
    image_summaries: int = setting(8, "Images per TensorBoard grid of samples/reconstructions; 0 disables.")
    deterministic: bool = setting(False, "Enable TF op determinism (bitwise-reproducible runs, slower).")
    intra_op_threads: int = setting(0, "Threads a single TensorFlow op may use; 0: TensorFlow's default (one per "
                                    "core). 1 runs independent ops side by side instead, which suits small models "
                                    "(docs/benchmarks.md). Changes float rounding only.")

    def __post_init__(self):
        if not isinstance(self.model_dir, str) or not self.model_dir:
            raise ValueError(f"Argument `model_dir` must be a non-empty path. Received: model_dir={self.model_dir!r}")
        for field in dataclasses.fields(self):
            if "choices" in field.metadata:
                _choice(getattr(self, field.name), field.name, field.metadata["choices"])
        bottleneck_registry.check_setting(self.bottleneck, dropout_rate=self.dropout_rate, beta=self.beta)
        check_nonnegative(self.aux_weight, "aux_weight")
        for name in ("batch_size", "epochs", "checkpoint_every", "keep_checkpoints", "log_every"):
            check_int(getattr(self, name), name, 1)
        if self.schedule_epochs is not None:
            check_int(self.schedule_epochs, "schedule_epochs", 1)
        for name in ("eval_batch_size", "steps_per_epoch"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name, 1)
        check_int(self.cpu_replicas, "cpu_replicas", 0)
        check_int(self.intra_op_threads, "intra_op_threads", 0)
        check_int(self.validation_examples, "validation_examples", 0)
        check_int(self.image_summaries, "image_summaries", 0)
        check_int(self.curve_points, "curve_points", 0)
        check_seed(self.seed)
        _positive(self.learning_rate, "learning_rate")
        _positive(self.final_learning_rate, "final_learning_rate")
        _positive(self.adam_epsilon, "adam_epsilon")
        for name in ("adam_beta1", "adam_beta2", "polyak_decay"):
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
        """Where versions go: ``export_dir``, or :func:`default_export_base` (relative to the working directory,
        the repository root for the documented commands)."""
        return self.export_dir or default_export_base(self.model_dir)

    @property
    def annealing_epochs(self):
        """Epochs over which the learning rate anneals; afterwards it holds at ``final_learning_rate``."""
        return self.schedule_epochs or self.epochs

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
        """Raises :class:`~gd_bottleneck.errors.SettingsError` (a ``ValueError``) listing the fields that differ
        from a saved run's and that a resume cannot change."""
        resumable = set(RESUMABLE_CHANGES)
        if (saved.get("schedule_epochs") or saved.get("epochs")) == self.annealing_epochs:
            # The same annealing: the first steps are the same whatever the length, so a run can be extended
            # (Hyperband's promotions; a run continued at its final rate until it converges, tuning.extend).
            resumable.update({"epochs", "schedule_epochs"})
        # A field added after the run was saved has its default there (runs of older versions keep resuming).
        defaults = {field.name: field.default for field in dataclasses.fields(self)}
        saved = {**{name: value for name, value in defaults.items() if name not in saved}, **saved}
        changed = {name: (saved.get(name), value) for name, value in self.to_dict().items()
                   if name not in resumable and saved.get(name) != value}
        if changed:
            details = ", ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in sorted(changed.items()))
            raise SettingsError(f"`model_dir` {self.model_dir!r} holds a run with different settings ({details}). "
                             "Use a new model_dir, or rerun with the original settings to resume.")


