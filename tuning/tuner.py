"""The KerasTuner tuner whose trials are trainer runs, for the four search strategies.

Each trial trains with :func:`gd_bottleneck.training.train` in ``<directory>/<project>/trial_<id>/run`` (a normal
run folder: results.json, checkpoints, TensorBoard, export if enabled) and reports the objectives' scores. What
KerasTuner provides is kept: its oracles (grid, random, Bayesian, Hyperband), its chief/worker distribution
(``KERASTUNER_TUNER_ID`` / ``_ORACLE_IP`` / ``_ORACLE_PORT``), its saved oracle state, and on reload the trials that
were running go back on its retry queue, whose rerun resumes the trial's own checkpoint.

Failures are reported, never dropped: a run whose loss diverges becomes a FAILED trial whose message says why (the
search goes on; KerasTuner stops after ``max_consecutive_failed_trials``), and :func:`trial_rows` lists it.
SIGTERM/SIGINT stops the search after the running trial saved a checkpoint (rerun the same command to resume).
"""

import functools
import os
import shutil

import keras_tuner as kt
from keras_tuner.src.tuners.gridsearch import LinkedList

from gd_bottleneck.training import TrainingDiverged, TrainingInterrupted, checkpoints, train
from tuning import hparams

TUNERS = ("grid", "random", "bayesian", "hyperband")


class TrainerTuner(kt.engine.base_tuner.BaseTuner):
    """Runs each trial as a training run. Args: ``hypermodel`` (a :class:`TrainerHyperModel`), ``objectives`` (an
    :class:`Objectives`), ``oracle`` (a KerasTuner oracle), ``write`` (progress lines), ``after_trial`` (called
    with a completed trial's run folder, on the machine that trained it while its checkpoints are there; what it
    returns, if anything, is written as a line), ``leave_when_idle`` (a worker leaves the search when the oracle
    has no new trial for it, for example a grid whose last trials other workers are running, instead of waiting for
    them; a trial that fails meanwhile is retried when the search is run again), and BaseTuner's keywords."""

    def __init__(self, hypermodel, objectives, oracle, write=print, after_trial=None, leave_when_idle=False,
                 **kwargs):
        self.objectives = objectives
        self.write = write
        self.after_trial = after_trial
        if leave_when_idle:
            _give_up_on_an_ended_chief()
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
        if leave_when_idle:  # self.oracle is now what this process asks: the oracle, or a worker's client of it
            self.oracle.create_trial = functools.partial(_create_trial_or_leave, self.oracle.create_trial, write)
            _let_the_chief_end_without_leavers()

    def _populate_initial_space(self):
        # Declaring every setting (conditional ones in their scopes) is enough; KerasTuner's default would build the
        # model once per conditional scope, seconds each for the paper() model.
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)

    def trial_model_dir(self, trial_id):
        return os.path.join(self.get_trial_dir(trial_id), "run")

    def trial_run_config(self, trial):
        """The trial's RunConfig; under Hyperband its ``epochs`` is the bracket's budget, annealed over
        ``max_epochs`` so that a promoted trial continues its parent's run."""
        hp = trial.hyperparameters
        config = self.hypermodel.trial_run_config(hp, self.trial_model_dir(trial.trial_id))
        if "tuner/epochs" in hp.values:
            config = type(config)(**{**config.to_dict(), "epochs": hp.values["tuner/epochs"],
                                     "schedule_epochs": self.oracle.max_epochs})
        return config

    def _continue_parent(self, trial, model_dir):
        """Hyperband promotions start from the parent trial's newest checkpoint (copied, so the parent's folder and
        results stay as they were)."""
        parent = trial.hyperparameters.values.get("tuner/trial_id")
        if not parent or os.path.exists(os.path.join(model_dir, "checkpoints")):
            return
        source = self.trial_model_dir(parent)
        os.makedirs(model_dir, exist_ok=True)
        shutil.copytree(os.path.join(source, "checkpoints"), os.path.join(model_dir, "checkpoints"))
        shutil.copy(os.path.join(source, "run_config.json"), os.path.join(model_dir, "run_config.json"))

    def run_trial(self, trial, *args, **kwargs):
        config = self.trial_run_config(trial)
        self._continue_parent(trial, config.model_dir)
        values = {name: value for name, value in active_values(trial.hyperparameters).items()
                  if not name.startswith("tuner/")}
        self.write(f"Trial {trial.trial_id}: {values}", flush=True)
        try:
            results = train(config, write=self.write)
        except TrainingDiverged as error:
            raise kt.errors.FailedTrialError(f"Trial {trial.trial_id} diverged: {error}") from error
        except TrainingInterrupted as error:
            raise kt.errors.FatalError(f"{error} (rerun the search command to resume)") from error
        scores = self.objectives.scores(results)
        hparams.write_trial(self.project_dir, trial.trial_id, values, scores, results)
        self.write(f"Trial {trial.trial_id}: " + ", ".join(f"{name} {value:.4f}" for name, value in scores.items()),
                   flush=True)
        if self.after_trial is not None:
            try:
                note = self.after_trial(config.model_dir)
            except Exception as error:  # an extra on a finished run: reported, the trial stays completed
                note = f"after-trial step failed ({type(error).__name__}: {error})"
            if note:
                self.write(f"Trial {trial.trial_id}: {note}", flush=True)
        return scores

    def load_model(self, trial):
        """The trained HybridVAE of ``trial`` (for ``get_best_models``)."""
        return checkpoints.load_trained_model(self.trial_model_dir(trial.trial_id))[0]


class ResumableGridSearchOracle(kt.oracles.GridSearchOracle):
    """KerasTuner 1.4.8's grid oracle, able to resume and to keep every worker busy.

    The stock oracle keeps its walk through the grid (the trials ordered by their values, and the queue of trials
    whose successor may still be untried) only in memory and does not save it with the rest of its state, so a
    reloaded grid search fails with ``KeyError`` in ``LinkedList.next`` as soon as a trial ends. Both are rebuilt
    here from the saved trials: every trial, in grid order, and all of them queued (an already tried successor is
    skipped by the oracle itself).
    """

    def set_state(self, state):
        super().set_state(state)
        by_values = functools.cmp_to_key(lambda a, b: self._compare(self.trials[a].hyperparameters.values,
                                                                     self.trials[b].hyperparameters.values))
        ordered = sorted(self.trials, key=by_values)
        self._ordered_ids = LinkedList()
        for trial_id in ordered:
            self._ordered_ids.insert(trial_id)
        self._populate_next = list(ordered)

    def populate_space(self, trial_id):
        """As the stock oracle, but a new trial is queued at once, so its successor can go to another worker.

        The stock oracle queues only the first trial when it is created, and any other trial only once it ends:
        after the first two trials a worker asking for work gets IDLE until the trial whose successor it would run
        has finished, so a grid runs one trial at a time however many workers there are (seen on the Figure 2
        sweep: one of two workers idle for 30 minutes). The search space is declared in full before the first trial
        (TrainerTuner._populate_initial_space), so no setting can appear during a trial, which is what the stock
        oracle waits for.
        """
        result = super().populate_space(trial_id)
        if result["status"] == kt.engine.trial.TrialStatus.RUNNING and trial_id not in self._populate_next:
            self._populate_next.append(trial_id)
        return result


def _create_trial_or_leave(create_trial, write, tuner_id):
    """``create_trial(tuner_id)``, with "idle" (nothing new to start while other trials run) turned into "stopped",
    which ends KerasTuner's search loop in this process."""
    trial = create_trial(tuner_id)
    if trial.status == kt.engine.trial.TrialStatus.IDLE:
        write(f"{tuner_id}: no new trial while others run; leaving this search.", flush=True)
        trial.status = kt.engine.trial.TrialStatus.STOPPED
    return trial


# How long a worker that leaves when idle waits for its chief to answer (KerasTuner waits up to an hour).
LEAVER_ORACLE_TIMEOUT_S = 120


def _give_up_on_an_ended_chief():
    """Makes this worker's calls to the chief fail after :data:`LEAVER_ORACLE_TIMEOUT_S` instead of an hour.

    Why: a chief started with leave_when_idle ends as soon as its search is over (below), so a worker that comes to
    a finished search late (it was still busy with an earlier search) finds no chief, and KerasTuner 1.4.8's client
    would wait an hour for one (``oracle_client.TIMEOUT``). The chief answers every call at once while it lives, so
    only an ended (or not yet started) chief takes longer; tuning.search reports the timeout and leaves."""
    from keras_tuner.src.distribute import oracle_client

    oracle_client.TIMEOUT = LEAVER_ORACLE_TIMEOUT_S


def _let_the_chief_end_without_leavers():
    """Makes a chief in this process end once its search is over and no trial runs. KerasTuner's chief also waits
    until every worker that ever asked for a trial has been told "stopped"; a worker that left when idle never is,
    so without this the chief would wait for it forever. (KerasTuner 1.4.8's ``oracle_chief.exit_chief``.)"""
    from keras_tuner.src.distribute import oracle_chief

    oracle_chief.exit_chief = lambda oracle: not oracle.ongoing_trials


def make_oracle(tuner, objective, max_trials, seed, max_epochs=None, factor=3, max_consecutive_failed_trials=3):
    """The KerasTuner oracle of ``tuner`` (one of :data:`TUNERS`); ``max_epochs``/``factor`` are Hyperband's."""
    common = {"objective": objective, "seed": seed, "max_consecutive_failed_trials": max_consecutive_failed_trials}
    if tuner == "grid":
        return ResumableGridSearchOracle(max_trials=max_trials, **common)
    if tuner == "random":
        return kt.oracles.RandomSearchOracle(max_trials=max_trials, **common)
    if tuner == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(max_trials=max_trials, **common)
    if tuner == "hyperband":
        if max_epochs is None or max_epochs < 1:
            raise ValueError(f"Argument `max_epochs` must be an integer >= 1 with tuner=hyperband. "
                             f"Received: {max_epochs}")
        return kt.oracles.HyperbandOracle(max_epochs=max_epochs, factor=factor, **common)
    raise ValueError(f"Argument `tuner` must be one of {list(TUNERS)}. Received: tuner={tuner!r}")


def active_values(hp):
    """The values of ``hp`` that apply to its trial: KerasTuner also keeps values of conditional settings whose
    condition does not hold (a variational trial still has a ``dropout_rate``), which would misreport the trial."""
    return {name: value for name, value in hp.values.items() if hp.is_active(name)}


def trial_rows(tuner):
    """One dict per trial, in trial order: id, status, hyper-parameters, scores, and the failure message if any."""
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        row = {"trial": trial_id, "status": trial.status, **active_values(trial.hyperparameters)}
        for name, observation in trial.metrics.metrics.items():
            row[name] = observation.get_last_value()
        if trial.status in ("FAILED", "INVALID"):
            row["message"] = (trial.message or "").strip().splitlines()[-1:] or [""]
            row["message"] = row["message"][0]
        rows.append(row)
    return rows
