"""Searches: the search space, the hypermodel's RunConfigs, objectives, the four tuners (with a fast stand-in for
training whose results are a known function of the settings), failure reporting, resume, Hyperband continuation,
and the result aggregation of tuning.frontier / tuning.probe. The distributed test runs real tiny trials."""

import csv
import glob
import importlib
import json
import math
import os
import socket
import subprocess
import sys
import time
import types

import grpc
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf
from absl import app, flags
from absl.testing import flagsaver
from google.protobuf import json_format

from gd_bottleneck.training import TrainingDiverged, TrainingInterrupted, files
from gd_bottleneck.training.run_config import RunConfig
from tests.tiny_models import RUN_FLAGS
from tuning import families, frontier, objectives, probe, space, tuner
from tuning.hypermodel import TrainerHyperModel, kind_of

BASE = {**RunConfig(model_dir="x", dropout_rate=0.1).to_dict(), "bottleneck": "gaussian_dropout",
        "dropout_rate": None, "dataset": "shapes_tiny", "image_size": 8, "export": False}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def hypermodel(**specs):
    return TrainerHyperModel(BASE, space.parse_all(specs))


def fake_results(config):
    """Results a run 'would' report: ELBO and KL are simple known functions of the settings."""
    strength = config.dropout_rate if config.bottleneck == "gaussian_dropout" else (config.beta or 0.0)
    elbo = 5.0 + strength + 0.01 * config.seed + config.aux_weight
    return {"test_elbo_bpd": elbo, "test_kl_bpd": strength / 10, "steps": 3, "config": config.to_dict()}


class FakeTraining:
    """Stands in for gd_bottleneck.training.train: records configs, writes results.json and a checkpoint file."""

    def __init__(self, diverge_when=None, interrupt_when=None):
        self.configs, self.diverge_when, self.interrupt_when = [], diverge_when, interrupt_when

    def __call__(self, config, write=print):
        self.configs.append(config)
        if self.diverge_when and self.diverge_when(config):
            raise TrainingDiverged("loss NaN at step 2")
        if self.interrupt_when and self.interrupt_when(config):
            self.interrupt_when = None
            raise TrainingInterrupted("SIGTERM received")
        results = fake_results(config)
        os.makedirs(os.path.join(config.model_dir, "checkpoints"), exist_ok=True)
        with open(os.path.join(config.model_dir, "checkpoints", f"epochs-{config.epochs}"), "w"):
            pass
        files.write_json_atomically(os.path.join(config.model_dir, "run_config.json"), config.to_dict())
        files.write_json_atomically(os.path.join(config.model_dir, "results.json"), results)
        return results


def search(tmp_path, monkeypatch, kind="grid", fake=None, goal=None, max_trials=20, overwrite=True, **specs):
    fake = fake or FakeTraining()
    monkeypatch.setattr(tuner, "train", fake)
    goal = goal or objectives.Objectives()
    oracle = tuner.make_oracle(kind, goal.keras_tuner_objective, max_trials, seed=1, max_epochs=9, factor=3)
    search_tuner = tuner.TrainerTuner(hypermodel(**specs), goal, oracle, write=lambda *a, **k: None,
                                      directory=str(tmp_path), project_name="p", overwrite=overwrite)
    search_tuner.search(verbose=0)
    return search_tuner, fake


# --- the search space ---

def test_space_parses_lists_ranges_and_log_ranges():
    assert space.parse("dropout_rate", "0.05, 0.5").values == (0.05, 0.5)
    assert space.parse("seed", "0,1,2").values == (0, 1, 2)
    beta = space.parse("beta", "0.01:1:log")
    assert (beta.low, beta.high, beta.log) == (0.01, 1.0, True)
    assert space.parse("pixelcnn_filters", "8:64").low == 8


@pytest.mark.parametrize("name, spec, message", [
    ("dropout_rate", "0.5:0.1", "LOW < HIGH"), ("beta", "0:1:log", "LOW > 0"), ("beta", "1:2:exp", "LOW:HIGH"),
    ("seed", "1.5", "not a int"), ("bottleneck", "gaussian", "values must be in"), ("dropout_rate", ",", "empty"),
    ("bottleneck", "none:variational", "list of values"), ("dropout_rate", "0.1,0.1", "twice"),
    ("momentum", "1,2", "cannot be tuned")])
def test_space_rejects_bad_specs_naming_the_flag(name, spec, message):
    with pytest.raises(ValueError, match=message):
        space.parse(name, spec)


# --- the hypermodel ---

def test_hypermodel_declares_conditional_settings_under_their_kind():
    model = hypermodel(bottleneck="gaussian_dropout,variational,auxiliary_decoder", dropout_rate="0.2,0.4",
                       beta="0.5", seed="3,4")
    hp = kt.HyperParameters()
    hp.values["bottleneck"] = "variational"
    values = model.declare_hyperparameters(hp)
    assert values == {"bottleneck": "variational", "beta": 0.5, "seed": 3}
    config = model.run_config(values, "d")
    assert (config.bottleneck, config.beta, config.dropout_rate, config.seed) == ("variational", 0.5, None, 3)
    auxiliary = model.run_config({"bottleneck": "auxiliary_decoder"}, "d")
    assert (auxiliary.bottleneck, auxiliary.aux_weight) == ("none", 1.0)
    assert kind_of(auxiliary) == "auxiliary_decoder" and kind_of(config) == "variational"
    assert {hp_.name for hp_ in hp.space} == {"bottleneck", "dropout_rate", "beta", "seed"}


def test_hypermodel_maps_widths_and_learning_rates_onto_the_run():
    model = hypermodel(dropout_rate="0.3", pixelcnn_filters="12", learning_rate="0.002")
    config = model.trial_run_config(kt.HyperParameters(), "trial")
    assert config.model_overrides == {"pixelcnn_filters": 12} and config.model_config().pixelcnn_filters == 12
    assert (config.learning_rate, config.dropout_rate, config.model_dir) == (0.002, 0.3, "trial")
    built = model.build(kt.HyperParameters())
    assert built.config.pixelcnn_filters == 12 and built.optimizer is not None


@pytest.mark.parametrize("specs, message", [
    ({"beta": "0.1"}, "--tune_beta` only applies"),
    ({"bottleneck": "variational"}, "--beta` is required"),
    ({"dropout_rate": "0.1", "pixelcnn_filters": "0"}, "pixelcnn_filters")])
def test_hypermodel_rejects_incomplete_searches_before_any_trial(specs, message):
    with pytest.raises(ValueError, match=message):
        hypermodel(**specs)


# --- objectives ---

def test_objectives_scores_and_the_constrained_choice():
    results = {"test_elbo_bpd": 4.0, "test_kl_bpd": 0.02, "validation_elbo_bpd": 4.1, "validation_kl_bpd": 0.03}
    assert objectives.Objectives("elbo_bpd").scores(results) == {"elbo_bpd": 4.0, "kl_bpd": 0.02}
    assert objectives.Objectives("kl_bpd", "validation").scores(results)["kl_bpd"] == 0.03
    assert objectives.Objectives("kl_bpd").keras_tuner_objective.direction == "max"
    constrained = objectives.Objectives("elbo_bpd_at_kl", min_kl_bpd=0.05, penalty=100.0)
    assert constrained.scores(results)["elbo_bpd_at_kl"] == pytest.approx(4.0 + 100.0 * 0.03)
    trials = [{"trial": "a", "elbo_bpd": 3.0, "kl_bpd": 0.049}, {"trial": "b", "elbo_bpd": 3.5, "kl_bpd": 0.05},
              {"trial": "c", "elbo_bpd": 3.4, "kl_bpd": 0.2}]
    assert constrained.scores({"test_elbo_bpd": 3.0, "test_kl_bpd": 0.049})["elbo_bpd_at_kl"] < 3.4  # score ...
    assert constrained.best_feasible(trials)["trial"] == "c"  # ... but the report's choice is strictly feasible
    short = [trial for trial in trials if trial["trial"] != "c" and trial["kl_bpd"] < 0.05]
    assert constrained.best_feasible(short)["trial"] == "a"  # none feasible: the best ELBO, reported as short
    assert constrained.shortfall(constrained.best_feasible(short)["kl_bpd"]) > 0
    assert constrained.best_feasible([]) is None
    with pytest.raises(ValueError, match="min_kl_bpd"):
        objectives.Objectives("elbo_bpd_at_kl")
    with pytest.raises(KeyError, match="validation_examples"):
        objectives.Objectives(split="validation").scores({"test_elbo_bpd": 1.0})


# --- the tuners, with the stand-in for training ---

def test_grid_search_enumerates_each_conditional_setting_once(tmp_path, monkeypatch):
    search_tuner, fake = search(tmp_path, monkeypatch, bottleneck="gaussian_dropout,variational,none",
                                dropout_rate="0.1,0.5", beta="0.2,0.4", seed="0,1")
    settings = sorted((c.bottleneck, c.dropout_rate, c.beta, c.seed) for c in fake.configs)
    expected = sorted([("gaussian_dropout", rate, None, seed) for rate in (0.1, 0.5) for seed in (0, 1)]
                      + [("variational", None, beta, seed) for beta in (0.2, 0.4) for seed in (0, 1)]
                      + [("none", None, None, 0), ("none", None, None, 1)])
    assert settings == expected
    seeds = [config.seed for config in fake.configs]
    assert seeds == sorted(seeds)  # every setting with seed 0 first: a sweep stopped part-way covers the curve
    best = search_tuner.oracle.get_best_trials(1)[0]
    assert best.hyperparameters.values == {"bottleneck": "none", "seed": 0} and best.score == pytest.approx(5.0)
    for config in fake.configs:  # every trial is a normal run folder inside the search directory
        assert os.path.exists(os.path.join(config.model_dir, "results.json"))
        assert config.model_dir.startswith(str(tmp_path / "p" / "trial_"))
    # The report lists only the settings that apply (the grid oracle carries stale values of inactive ones along).
    applies = {"gaussian_dropout": {"dropout_rate"}, "variational": {"beta"}, "none": set()}
    for row in tuner.trial_rows(search_tuner):
        assert {"dropout_rate", "beta"} & set(row) == applies[row["bottleneck"]], row


def hparams_sessions(folder):
    """``{trial folder: (hparams dict, {scalar tag: value})}`` read back from the event files TensorBoard would load."""
    from tensorboard.plugins.hparams import metadata as hparams_metadata

    sessions = {}
    for trial in sorted(os.listdir(folder)):
        values, scalars = {}, {}
        for path in sorted(glob.glob(os.path.join(folder, trial, "events.out.tfevents.*"))):
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    if value.tag == hparams_metadata.SESSION_START_INFO_TAG:
                        info = hparams_metadata.parse_session_start_info_plugin_data(value.metadata.plugin_data.content)
                        values = {name: json_format.MessageToDict(v) for name, v in info.hparams.items()}
                    elif value.metadata.plugin_data.plugin_name == "scalars":
                        scalars[value.tag] = float(tf.make_ndarray(value.tensor))
        sessions[trial] = (values, scalars)
    return sessions


def test_every_completed_trial_is_an_hparams_session_tensorboard_can_read(tmp_path, monkeypatch):
    search_tuner, fake = search(tmp_path, monkeypatch, bottleneck="gaussian_dropout,variational",
                                dropout_rate="0.1,0.5", beta="0.2")
    sessions = hparams_sessions(str(tmp_path / "p" / "hparams"))
    assert len(sessions) == len(fake.configs) == 3
    for trial in search_tuner.oracle.trials.values():
        values, scalars = sessions[f"trial_{trial.trial_id}"]
        config = next(c for c in fake.configs if c.model_dir == search_tuner.trial_model_dir(trial.trial_id))
        strength = ({"dropout_rate": config.dropout_rate} if config.bottleneck == "gaussian_dropout"
                    else {"beta": config.beta})
        expected = {"bottleneck": config.bottleneck, **strength}
        assert values == expected  # only the settings that apply to the trial
        results = fake_results(config)
        assert scalars["test_elbo_bpd"] == pytest.approx(results["test_elbo_bpd"])
        assert scalars["test_kl_bpd"] == pytest.approx(results["test_kl_bpd"])
        assert scalars[search_tuner.objectives.keras_tuner_objective.name] == pytest.approx(trial.score)


def test_after_trial_runs_on_every_completed_trials_run_folder(tmp_path, monkeypatch):
    fake, lines, seen = FakeTraining(), [], []
    monkeypatch.setattr(tuner, "train", fake)
    goal = objectives.Objectives()
    oracle = tuner.make_oracle("grid", goal.keras_tuner_objective, 20, seed=1)
    search_tuner = tuner.TrainerTuner(hypermodel(bottleneck="gaussian_dropout", dropout_rate="0.1,0.5"), goal, oracle,
                                      write=lambda line, **kwargs: lines.append(line),
                                      after_trial=lambda folder: seen.append(folder) or "probed",
                                      directory=str(tmp_path), project_name="p", overwrite=True)
    search_tuner.search(verbose=0)
    assert len(seen) == 2 and sorted(seen) == sorted(config.model_dir for config in fake.configs)
    assert all(os.path.exists(os.path.join(folder, "results.json")) for folder in seen)  # after training, not before
    assert sum(line.endswith(": probed") for line in lines) == 2
    # A failing after-trial step is reported; the trained trial stays completed.
    def broken(folder):
        raise OSError("disk full")

    search_tuner = tuner.TrainerTuner(hypermodel(bottleneck="gaussian_dropout", dropout_rate="0.1"), goal,
                                      tuner.make_oracle("grid", goal.keras_tuner_objective, 20, seed=1),
                                      write=lambda line, **kwargs: lines.append(line), after_trial=broken,
                                      directory=str(tmp_path), project_name="q", overwrite=True)
    search_tuner.search(verbose=0)
    assert lines[-1].endswith("after-trial step failed (OSError: disk full)")
    assert [row["status"] for row in tuner.trial_rows(search_tuner)] == ["COMPLETED"]


def test_a_worker_that_may_leave_when_idle_ends_its_search_instead_of_waiting(tmp_path, monkeypatch):
    from keras_tuner.src.distribute import oracle_chief
    monkeypatch.setattr(oracle_chief, "exit_chief", oracle_chief.exit_chief)  # restored after the test
    goal = objectives.Objectives()
    oracle = tuner.make_oracle("grid", goal.keras_tuner_objective, 20, seed=1)
    lines = []
    search_tuner = tuner.TrainerTuner(hypermodel(bottleneck="gaussian_dropout", dropout_rate="0.1"), goal, oracle,
                                      write=lambda line, **kwargs: lines.append(line), leave_when_idle=True,
                                      directory=str(tmp_path), project_name="p", overwrite=True)
    first = search_tuner.oracle.create_trial("tuner0")  # the grid's only setting, now running on tuner0
    assert first.status == kt.engine.trial.TrialStatus.RUNNING
    # Another worker asks while it runs: the grid oracle says idle (wait), this tuner turns that into stopped (leave).
    assert search_tuner.oracle.create_trial("tuner1").status == kt.engine.trial.TrialStatus.STOPPED
    assert lines == ["tuner1: no new trial while others run; leaving this search."]
    waiting = tuner.TrainerTuner(hypermodel(bottleneck="gaussian_dropout", dropout_rate="0.1"), goal,
                                 tuner.make_oracle("grid", goal.keras_tuner_objective, 20, seed=1),
                                 directory=str(tmp_path), project_name="q", overwrite=True)
    waiting.oracle.create_trial("tuner0")
    assert waiting.oracle.create_trial("tuner1").status == kt.engine.trial.TrialStatus.IDLE  # KerasTuner's default
    # A chief ends when its search is over and nothing runs, without waiting for tuner1, which left unannounced.
    oracle.ongoing_trials.clear()
    assert oracle.tuner_ids == {"tuner0", "tuner1"} and oracle_chief.exit_chief(oracle)


def test_a_worker_that_may_leave_when_idle_leaves_a_search_whose_chief_has_ended(tmp_path, monkeypatch, capsys):
    # The chief of a finished search ends at once; a worker coming late must not wait an hour for it.
    from keras_tuner.src.distribute import oracle_client

    from tuning import search as search_cli
    monkeypatch.setattr(oracle_client, "TIMEOUT", oracle_client.TIMEOUT)  # restored after the test
    monkeypatch.setattr(tuner, "LEAVER_ORACLE_TIMEOUT_S", 3)
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(free_port()))  # nobody serves it
    with flagsaver.flagsaver():
        flags.FLAGS(["search", f"--directory={tmp_path}", "--project_name=late", "--tuner=grid", "--leave_when_idle",
                     "--tune_bottleneck=gaussian_dropout", "--tune_dropout_rate=0.1,0.2"])
        started = time.monotonic()
        assert search_cli.main(["search"]) is None
    assert time.monotonic() - started < 60
    assert "did not answer within 3 s: its search has ended; leaving it." in capsys.readouterr().out


class _ClosedConnection(grpc.RpcError):
    """What KerasTuner's client raises when the chief closes the socket during a call."""

    def code(self):
        return grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("leave_when_idle", [True, False])
def test_a_chief_that_closes_the_connection_ends_a_leaver_only(tmp_path, monkeypatch, capsys, leave_when_idle):
    from tuning import search as search_cli

    def closing_search():
        raise _ClosedConnection()

    monkeypatch.setattr(search_cli, "tuner_from_flags", lambda: types.SimpleNamespace(search=closing_search))
    with flagsaver.flagsaver():
        flags.FLAGS(["search", f"--directory={tmp_path}", "--project_name=closed", "--tuner=grid",
                     f"--leave_when_idle={leave_when_idle}", "--tune_bottleneck=gaussian_dropout"])
        if leave_when_idle:
            assert search_cli.main(["search"]) is None
            assert "closed the connection: its search has ended; leaving it." in capsys.readouterr().out
        else:
            with pytest.raises(_ClosedConnection):
                search_cli.main(["search"])


@pytest.mark.parametrize("kind", ["random", "bayesian"])
def test_random_and_bayesian_search_sample_inside_the_ranges(tmp_path, monkeypatch, kind):
    goal = objectives.Objectives("elbo_bpd_at_kl", min_kl_bpd=0.03)
    search_tuner, fake = search(tmp_path, monkeypatch, kind, goal=goal, max_trials=5, dropout_rate="0.05:0.6",
                                learning_rate="1e-4:1e-2:log")
    assert len(fake.configs) == 5
    assert all(0.05 <= c.dropout_rate <= 0.6 and 1e-4 <= c.learning_rate <= 1e-2 for c in fake.configs)
    for row in tuner.trial_rows(search_tuner):
        expected = fake_results(RunConfig(model_dir="x", dropout_rate=row["dropout_rate"]))
        shortfall = max(0.0, 0.03 - expected["test_kl_bpd"])
        assert row["elbo_bpd_at_kl"] == pytest.approx(expected["test_elbo_bpd"] + 100.0 * shortfall)


def test_hyperband_trains_promoted_trials_on_from_their_parents_checkpoints(tmp_path, monkeypatch):
    search_tuner, fake = search(tmp_path, monkeypatch, "hyperband", dropout_rate="0.1:0.9")
    budgets = {config.epochs for config in fake.configs}
    assert budgets <= {1, 3, 9} and len(budgets) > 1 and max(budgets) == 9
    assert {config.schedule_epochs for config in fake.configs} == {9}  # one annealing horizon for all budgets
    promoted = [trial for trial in search_tuner.oracle.trials.values() if trial.hyperparameters.values.get(
        "tuner/trial_id")]
    assert promoted
    for trial in promoted:
        parent = trial.hyperparameters.values["tuner/trial_id"]
        parent_epochs = search_tuner.oracle.trials[parent].hyperparameters.values["tuner/epochs"]
        copied = os.listdir(os.path.join(search_tuner.trial_model_dir(trial.trial_id), "checkpoints"))
        assert f"epochs-{parent_epochs}" in copied  # the parent's checkpoint was there to resume from


def test_failed_trials_are_reported_and_an_interrupted_search_resumes(tmp_path, monkeypatch, capsys):
    from tuning import search as search_cli

    diverging = FakeTraining(diverge_when=lambda c: c.dropout_rate == 0.5,
                             interrupt_when=lambda c: c.dropout_rate == 0.9)
    with pytest.raises(kt.errors.FatalError, match="SIGTERM"):
        search(tmp_path, monkeypatch, fake=diverging, dropout_rate="0.1,0.5,0.9,0.7")
    resumed_tuner, resumed = search(tmp_path, monkeypatch, overwrite=False, dropout_rate="0.1,0.5,0.9,0.7")
    assert [c.dropout_rate for c in resumed.configs] == [0.9, 0.7]  # the interrupted trial first, then the rest
    assert resumed.configs[0].model_dir == diverging.configs[-1].model_dir  # same folder: resumes its checkpoint
    rows = search_cli.report(resumed_tuner)
    printed = capsys.readouterr().out
    assert [row["status"] for row in rows] == ["COMPLETED", "FAILED", "COMPLETED", "COMPLETED"]
    assert "diverged" in rows[1]["message"] and "1 trial(s) failed: ['01']" in printed.replace('"', "'")
    assert "Best trial: 00 " in printed


@pytest.mark.parametrize("extra, message", [
    (["--tuner=grid", "--tune_dropout_rate=0.1:0.5"], "needs lists of values"),
    (["--tuner=hyperband", "--dropout_rate=0.1"], "--max_epochs` is required"),
    (["--objective=elbo_bpd_at_kl", "--dropout_rate=0.1"], "min_kl_bpd"),
    (["--tune_beta=0.1", "--dropout_rate=0.1"], "--tune_beta` only applies"),
    (["--objective_split=validation", "--dropout_rate=0.1"], "--validation_examples > 0"),
    (["--tune_bottleneck=variational,none"], "--beta` is required"),
    (["--tune_seed=0:x"], "--tune_seed` has 'x'"),
    (["--probe_latents=sample", "--dataset=cifar10", "--dropout_rate=0.1"], "--probe_latents` needs the shapes")])
def test_search_flags_are_checked_before_anything_runs(extra, message):
    from absl import flags
    from absl.testing import flagsaver

    from tuning import search as search_cli

    with flagsaver.flagsaver():
        flags.FLAGS(["search", "--directory=/tmp/never", "--dataset=shapes", *extra])
        with pytest.raises(ValueError, match=message):
            search_cli.tuner_from_flags()
    assert not os.path.exists("/tmp/never")


@pytest.mark.parametrize("change, differs", [
    (["--tuner=random", "--max_trials=3"], "tuner: 'grid' -> 'random'"),
    (["--tune_dropout_rate=0.2,0.3"], "tuned space"),  # a grid may grow, not lose or swap values
    (["--learning_rate=0.01"], "learning_rate: 0.001 -> 0.01"),
    (["--objective=elbo_bpd_at_kl", "--min_kl_bpd=0.05"], "objective:"),
    (["--dataset=shapes_tiny", "--image_size=8"], "dataset: 'shapes' -> 'shapes_tiny'")])
def test_a_search_folder_refuses_a_different_search_and_lets_a_grid_grow(tmp_path, change, differs):
    from absl import flags
    from absl.testing import flagsaver

    from tuning import search as search_cli

    base = ["search", f"--directory={tmp_path}", "--project_name=p", "--dataset=shapes", "--tuner=grid",
            "--learning_rate=0.001", "--tune_dropout_rate=0.1,0.2"]
    with flagsaver.flagsaver():
        flags.FLAGS(base)
        search_cli.tuner_from_flags()  # records the search's identity (no trial runs before search())
    recorded = json.loads((tmp_path / "p" / "gd_search.json").read_text())
    assert recorded["tuner"] == "grid" and recorded["base"]["learning_rate"] == 0.001
    with flagsaver.flagsaver():
        flags.FLAGS([*base, *change])
        with pytest.raises(ValueError, match="started with other settings") as refused:
            search_cli.tuner_from_flags()
    assert differs in str(refused.value) and "--overwrite" in str(refused.value)
    for allowed in (["--data_dir=/elsewhere", "--log_every=7"],  # where and how often: a resume may change them
                    ["--tune_dropout_rate=0.1,0.2,0.3", "--max_trials=50"],  # the grid grows
                    [*change, "--overwrite"]):  # starting over
        with flagsaver.flagsaver():
            flags.FLAGS([*base, *allowed])
            search_cli.tuner_from_flags()


def test_search_cli_reports_a_bad_flag_as_a_usage_error():
    done = subprocess.run([sys.executable, "-m", "tuning.search", "--directory=/tmp/never", "--tuner=grid",
                           "--tune_dropout_rate=0.1:0.5"], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": REPO}, timeout=120)
    assert done.returncode == 1 and "Flag `--tuner=grid` needs lists of values" in done.stderr, done.stderr[-2000:]


SWEEP_PROTOCOL = ("dataset", "image_size", "model_preset", "batch_size", "epochs", "learning_rate",
                  "final_learning_rate", "lr_schedule", "validation_examples", "curve_points", "directory", "tuner")


def sweep_flags(flagfile):
    """``(tune specs, protocol flag values, project name)`` of a Figure 2 flagfile as tuning.search parses it."""
    importlib.import_module("tuning.search")  # defines the search's flags

    with flagsaver.flagsaver():
        flags.FLAGS(["search", f"--flagfile={flagfile}"])
        return ({name: flags.FLAGS[f"tune_{name}"].value for name in space.TUNABLE},
                {name: flags.FLAGS[name].value for name in SWEEP_PROTOCOL}, flags.FLAGS.project_name)


MAIN_GRID = {("gaussian_dropout", 0.015), ("gaussian_dropout", 0.05), ("gaussian_dropout", 0.15),
             ("gaussian_dropout", 0.5), ("gaussian_dropout", 0.9), ("variational", 0.005), ("variational", 0.02),
             ("variational", 0.08), ("variational", 0.3), ("none", None), ("auxiliary_decoder", 1.0)}
EXTENSION = {("gaussian_dropout", 0.97), ("gaussian_dropout", 0.99), ("variational", 1.0)}


@pytest.mark.parametrize("flagfile, settings", [("studies/figure2_8x8/figure2.flags", MAIN_GRID),
                                                ("studies/figure2_8x8/figure2_extension.flags", EXTENSION)])
def test_the_figure2_sweeps_grid_every_setting_for_three_seeds(flagfile, settings, tmp_path, monkeypatch):
    """What `make figure2` runs (studies/figure2_8x8/README.md): each flagfile's grid, enumerated by the real oracle
    with training faked, is its settings x seeds 0-2, once each, seeds varying slowest."""
    monkeypatch.chdir(REPO)
    specs = sweep_flags(flagfile)[0]
    _, fake = search(tmp_path, monkeypatch, max_trials=100, **specs)
    kinds = [families.family_of(config.to_dict()) for config in fake.configs]
    runs = [(kind.name, getattr(config, kind.strength_argument) if kind.strength_argument else None, config.seed)
            for kind, config in zip(kinds, fake.configs)]
    assert sorted(runs, key=str) == sorted(((*setting, seed) for setting in settings for seed in (0, 1, 2)), key=str)
    assert [seed for *_, seed in runs] == sorted(seed for *_, seed in runs)


def test_the_figure2_extension_shares_the_main_protocol_in_a_search_of_its_own(monkeypatch):
    monkeypatch.chdir(REPO)
    _, main_protocol, main_project = sweep_flags("studies/figure2_8x8/figure2.flags")
    _, extension_protocol, extension_project = sweep_flags("studies/figure2_8x8/figure2_extension.flags")
    assert extension_protocol == main_protocol and main_protocol["epochs"] == 12
    assert (main_project, extension_project) == ("search", "search_extension")


# --- aggregation: tuning.frontier and tuning.probe ---


def run_cli(module, args):
    """``module.main`` as its command line runs it: its absl flags defined and parsed from ``args``."""
    module.define_flags()
    with flagsaver.flagsaver():
        return module.main(flags.FLAGS([module.__name__, *args]))


def write_run(folder, bottleneck, seed, elbo, kl, dropout_rate=None, beta=None, aux_weight=0.0):
    config = RunConfig(model_dir=str(folder), bottleneck=bottleneck, dropout_rate=dropout_rate, beta=beta,
                       aux_weight=aux_weight, seed=seed).to_dict()
    files.write_json_atomically(os.path.join(folder, "results.json"),
                                {"test_elbo_bpd": elbo, "test_kl_bpd": kl, "steps": 10, "config": config})


def test_frontier_aggregates_seeds_and_compares_vb_with_the_gd_curve(tmp_path, capsys):
    write_run(tmp_path / "a", "gaussian_dropout", 0, 4.0, 0.10, dropout_rate=0.5)
    write_run(tmp_path / "b", "gaussian_dropout", 1, 4.2, 0.14, dropout_rate=0.5)
    write_run(tmp_path / "c", "gaussian_dropout", 0, 3.0, 0.00, dropout_rate=0.1)
    write_run(tmp_path / "d", "variational", 0, 3.9, 0.06, beta=0.3)
    write_run(tmp_path / "e", "none", 0, 3.1, 0.01, aux_weight=1.0)
    write_run(tmp_path / "f" / "deep", "none", 0, 2.9, 0.0)
    rows = frontier.aggregate(frontier.load_runs([str(tmp_path)]))
    gd = [row for row in rows if row["kind"] == "gaussian_dropout" and row["strength"] == 0.5][0]
    assert gd["n"] == 2 and gd["elbo_bpd_mean"] == pytest.approx(4.1)
    assert gd["elbo_bpd_std"] == pytest.approx(np.std([4.0, 4.2], ddof=1))
    assert gd["kl_bpd_mean"] == pytest.approx(0.12)
    assert {row["kind"] for row in rows} == {"gaussian_dropout", "variational", "none", "auxiliary_decoder"}
    (comparison,) = frontier.compare(rows)
    # GD curve through (0, 3.0) and (0.12, 4.1): at KL 0.06 its ELBO is 3.55, so VB's 3.9 is 0.35 worse
    assert comparison["gd_elbo_bpd_at_kl"] == pytest.approx(3.55) and comparison["gap_bpd"] == pytest.approx(0.35)
    assert math.isnan(frontier.curve_at(rows[:2], 0.5))
    dominated_by = {row["setting"]: row["dominated_by"] for row in frontier.dominance(rows)}
    # means (KL, ELBO): GD 0.1 (0, 3.0), GD 0.5 (0.12, 4.1), VB 0.3 (0.06, 3.9), none (0, 2.9), aux 1 (0.01, 3.1)
    assert dominated_by == {"gaussian_dropout 0.1": "none", "gaussian_dropout 0.5": "-",
                            "variational 0.3": "-", "none": "-", "auxiliary_decoder 1": "-"}
    assert run_cli(frontier, [str(tmp_path), "--out", str(tmp_path / "f.png"), "--csv", str(tmp_path / "t.csv")]) == 0
    assert open(tmp_path / "f.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    lines = open(tmp_path / "t.csv").read().splitlines()
    assert lines[0].startswith("kind,strength,n,seeds,elbo_bpd_mean") and len(lines) == 1 + len(rows)
    assert "0.3500" in capsys.readouterr().out
    with pytest.raises(app.UsageError, match="missing"):
        run_cli(frontier, [str(tmp_path / "missing")])
    # The committed runs.csv alone redraws the same tables and figure (no run folders needed).
    assert run_cli(frontier, [str(tmp_path), "--runs_csv", str(tmp_path / "runs.csv")]) == 0
    from_csv = frontier.aggregate(frontier.load_runs_csv(str(tmp_path / "runs.csv")))
    assert from_csv == rows
    assert run_cli(frontier, ["--from_runs_csv", str(tmp_path / "runs.csv"), "--out", str(tmp_path / "g.png")]) == 0
    header = open(tmp_path / "runs.csv").readline().strip().split(",")
    assert header[1:7] == ["kind", "strength", "seed", "steps", "elbo_bpd", "kl_bpd"] and "converged" in header


def test_probe_r2_is_one_for_linear_factors_and_not_positive_for_noise():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2000, 30))
    linear = features @ rng.normal(size=(30, 2)) + 0.5
    assert probe.ridge_r2(features, linear, ridge=1e-6) == pytest.approx(1.0, abs=1e-6)
    assert probe.ridge_r2(features, rng.normal(size=(2000, 1))) < 0.01
    targets = probe.factor_targets({"background": {"hue": np.array([0.0, 0.25]), "stripe_angle": np.array([0.0, 1.0]),
                                                   "stripe_period": np.array([0.2, 0.3])},
                                    "num_objects": np.array([1, 3]),
                                    "objects": {"x": np.ones((2, 3)), "y": np.ones((2, 3)), "size": np.ones((2, 3))}})
    np.testing.assert_allclose(targets["hue"], [[1.0, 0.0], [0.0, 1.0]], atol=1e-12)
    assert targets["num_objects"].shape == (2, 1)


def test_probe_on_sampled_latents_sees_nothing_in_unused_latents_that_their_tiny_means_still_order():
    # An unused latent: q(z|x) = N(tiny mean, 1), the mean a linear function of the factor. Standardised, the means
    # predict the factor perfectly; a draw from q is noise, so a probe of what the decoder receives finds nothing.
    rng = np.random.default_rng(1)
    factor = rng.normal(size=(4000, 1))
    mean, stddev = 1e-3 * factor @ rng.normal(size=(1, 8)), np.ones((4000, 8))
    assert probe.ridge_r2(probe.latent_features(mean, stddev, "mean"), factor) == pytest.approx(1.0, abs=1e-3)
    assert probe.ridge_r2(probe.latent_features(mean, stddev, "sample"), factor) < 0.01
    # A used latent (mean large against its stddev) is seen by both.
    assert probe.ridge_r2(probe.latent_features(1e4 * mean, stddev, "sample"), factor) > 0.99
    with pytest.raises(ValueError, match="`latents` must be one of"):
        probe.latent_features(mean, stddev, "median")


def test_probe_reads_kept_results_and_leaves_out_runs_it_cannot_probe(tmp_path, monkeypatch, capsys):
    # A run's probe result is kept beside results.json (its checkpoint is not committed): a kept result is read
    # without loading any model or data, a run with neither result nor checkpoint is named and left out, and so is
    # a run trained further since its probe (d: probed at step 5, now at step 10).
    monkeypatch.setattr(probe, "probe_run", lambda *args, **kwargs: pytest.fail("no run should be recomputed"))
    for name, seed, hue, steps in (("a", 0, 0.2, 10), ("b", 1, 0.4, 10), ("c", 2, None, None), ("d", 3, 0.9, 5)):
        write_run(tmp_path / name, "gaussian_dropout", seed, 5.0, 0.1, dropout_rate=0.5)
        files.write_json_atomically(str(tmp_path / name / "run_config.json"),
                                    RunConfig(model_dir=str(tmp_path / name), bottleneck="gaussian_dropout",
                                              dropout_rate=0.5, seed=seed).to_dict())
        if hue is not None:
            files.write_json_atomically(str(tmp_path / name / "probe_sample.json"),
                                        {"latents": "sample", "ridge": 1.0, "steps": steps,
                                         "result": {"hue": hue, "largest_x": -0.2}})
    runs_csv = tmp_path / "probe_runs.csv"
    assert probe.probe([str(tmp_path)], csv_path=str(tmp_path / "probe.csv"), runs_csv=str(runs_csv)) == 0
    out = capsys.readouterr().out
    for name in "cd":
        assert f"{name}: no probe_sample.json of its final step and no checkpoint: left out" in out
    with open(tmp_path / "probe.csv") as stream:
        (row,) = list(csv.DictReader(stream))
    assert row["n"] == "2" and float(row["hue"]) == pytest.approx(0.3) and float(row["mean_r2"]) == pytest.approx(0.05)
    assert open(runs_csv).read().count("\n") == 3  # header and the two probed runs
    with pytest.raises(app.UsageError, match="has a probe result or a checkpoint"):
        probe.probe([str(tmp_path / "c")])
    # The search's --probe_latents hook reads the same kept results (and would compute missing ones).
    from tuning import search as search_cli
    assert search_cli.after_trial_hook(None) is None
    assert search_cli.after_trial_hook("sample")(str(tmp_path / "a")) == "probe R^2 hue 0.200, largest_x -0.200"
    files.write_json_atomically(str(tmp_path / "a" / "noisy_evaluation.json"), {"steps": 10, "result": {
        "noise_free_elbo_bpd": 5.0, "noisy_elbo_bpd": 4.5, "draws": 2}})
    assert search_cli.after_trial_hook("sample", 2)(str(tmp_path / "a")) == (
        "probe R^2 hue 0.200, largest_x -0.200; test ELBO noise off 5.0000, with the bottleneck's noise 4.5000 "
        "bits/dim")
    assert search_cli.after_trial_hook(None, 2)(str(tmp_path / "c")) == "no checkpoint to evaluate"


# --- distributed search: KerasTuner's chief/worker mode with real tiny trials ---

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_distributed_search_chief_and_two_workers_run_every_trial_once(tmp_path, shapes_data_dir, capsys):
    command = [sys.executable, "-m", "tuning.search", f"--directory={tmp_path}", "--project_name=d",
               f"--data_dir={shapes_data_dir}", "--dataset=shapes_tiny", "--image_size=8", "--batch_size=8",
               "--epochs=1", "--steps_per_epoch=2", "--noexport", "--image_summaries=0", "--progress=lines",
               "--tuner=grid", "--tune_bottleneck=gaussian_dropout,none", "--tune_dropout_rate=0.1,0.6", *RUN_FLAGS]
    base = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2", "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(free_port())}
    logs = {name: open(tmp_path / f"{name}.log", "w+") for name in ("chief", "tuner0", "tuner1")}
    processes = {"chief": subprocess.Popen(command, cwd=REPO, env={**base, "KERASTUNER_TUNER_ID": "chief"},
                                           stdout=logs["chief"], stderr=subprocess.STDOUT)}
    time.sleep(3)
    for name in ("tuner0", "tuner1"):
        processes[name] = subprocess.Popen(command, cwd=REPO, env={**base, "KERASTUNER_TUNER_ID": name},
                                           stdout=logs[name], stderr=subprocess.STDOUT)
    for name, process in processes.items():
        process.wait(timeout=400)
    text = {name: open(tmp_path / f"{name}.log").read() for name in logs}
    assert processes["chief"].returncode == 0, text["chief"][-3000:]
    results = sorted((tmp_path / "d").glob("trial_*/run/results.json"))
    settings = sorted((r["config"]["bottleneck"], r["config"]["dropout_rate"] or 0.0)
                      for r in (json.loads(p.read_text()) for p in results))
    assert settings == [("gaussian_dropout", 0.1), ("gaussian_dropout", 0.6), ("none", 0.0)]
    ran = {name: text[name].count("Test: elbo") for name in ("tuner0", "tuner1")}
    assert sum(ran.values()) == 3 and min(ran.values()) >= 1, ran  # both workers ran trials, none twice
    assert text["chief"].count("status=COMPLETED") == 3 and "Best trial" in text["chief"]

    # The trials' folders feed the frontier and the linear probe (real trained models, the 8x8 factors).
    assert run_cli(frontier, [str(tmp_path / "d"), "--csv", str(tmp_path / "f.csv")]) == 0
    assert run_cli(probe, [str(tmp_path / "d"), "--csv", str(tmp_path / "p.csv")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == 3 and all(-10.0 < float(row["mean_r2"]) <= 1.0 for row in rows)
    assert {"hue", "stripe_angle", "num_objects", "largest_size"} <= set(rows[0])


def test_trial_rows_leave_out_settings_whose_condition_does_not_hold():
    # As a distributed grid search hands them out: a variational trial still carrying a gaussian_dropout rate.
    hp = kt.HyperParameters()
    hp.Choice("bottleneck", ["gaussian_dropout", "variational"])
    with hp.conditional_scope("bottleneck", ["gaussian_dropout"]):
        hp.Choice("dropout_rate", [0.1, 0.5])
    with hp.conditional_scope("bottleneck", ["variational"]):
        hp.Choice("beta", [0.1, 0.3])
    hp.values.update(bottleneck="variational", dropout_rate=0.1, beta=0.3)
    trial = kt.engine.trial.Trial(hp, trial_id="007", status="COMPLETED")
    fake_tuner = types.SimpleNamespace(oracle=types.SimpleNamespace(trials={"007": trial}))
    assert tuner.trial_rows(fake_tuner) == [{"trial": "007", "status": "COMPLETED", "bottleneck": "variational",
                                             "beta": 0.3}]


# --- statistics of the Figure 2 comparison ---

def synthetic_runs(gd_shift=0.0, noise=0.0):
    """GD at (kl, 5 - kl) and VB at (kl, 5 - kl + 0.1 + gd_shift), plus seed noise, for seeds 0, 1, 2."""
    rng = np.random.default_rng(1)
    records = []
    for seed in (0, 1, 2):
        for rate, kl in ((0.1, 0.0), (0.5, 0.2), (0.9, 0.4)):
            records.append({"kind": "gaussian_dropout", "strength": rate, "seed": seed, "kl_bpd": kl,
                            "elbo_bpd": 5.0 - kl + noise * rng.standard_normal()})
        for beta, kl in ((0.02, 0.1), (0.08, 0.3)):
            records.append({"kind": "variational", "strength": beta, "seed": seed, "kl_bpd": kl,
                            "elbo_bpd": 5.0 - kl + 0.1 + gd_shift + noise * rng.standard_normal()})
    return records


def test_nearest_pairs_difference_each_vb_setting_with_the_gd_setting_nearest_in_kl_seed_by_seed():
    from tuning.statistics import nearest_pairs
    records = synthetic_runs()  # GD KL 0.0, 0.2, 0.4 (p = 0.1, 0.5, 0.9); VB beta 0.02 at KL 0.1, 0.08 at 0.3
    records = [r for r in records if not (r["kind"] == "gaussian_dropout" and r["strength"] == 0.1)]  # no tie
    records.append({"kind": "variational", "strength": 0.3, "seed": 0, "kl_bpd": 0.45, "elbo_bpd": 4.0})
    pairs = {row["beta"]: row for row in nearest_pairs(records)}
    assert pairs[0.02]["nearest_gd_rate"] == 0.5 and pairs[0.02]["seeds"] == 3
    # VB at (0.1, 5.0) against GD p=0.5 at (0.2, 4.8), identical in every seed: differences +0.2 ELBO, -0.1 KL
    assert pairs[0.02]["elbo_bpd_diff_mean"] == pytest.approx(0.2) and pairs[0.02]["elbo_bpd_diff_ci95"] == 0.0
    assert pairs[0.02]["kl_bpd_diff_mean"] == pytest.approx(-0.1)
    assert pairs[0.3]["nearest_gd_rate"] == 0.9 and pairs[0.3]["seeds"] == 1
    assert pairs[0.3]["elbo_bpd_diff_mean"] == pytest.approx(4.0 - 4.6) and math.isnan(pairs[0.3]["elbo_bpd_diff_ci95"])


def test_convergence_compares_the_end_with_the_point_nearest_three_quarters(tmp_path):
    from tuning import convergence
    elbo = {100: 6.0, 200: 5.5, 300: 5.3, 400: 5.25, 500: 5.24}
    kl = {100: 0.0, 200: 0.05, 300: 0.10, 400: 0.12, 500: 0.15}
    with open(tmp_path / "curve.jsonl", "w") as stream:
        for step in elbo:
            stream.write(json.dumps({"step": step, "elbo_bpd": elbo[step], "kl_bpd": kl[step]}) + "\n")
    # 75% of step 500 is 375: the nearest point is step 400, so the last quarter improved 5.25 - 5.24 = 0.01
    result = convergence.convergence_of(str(tmp_path))
    assert result["improvement_last_quarter_bpd"] == pytest.approx(0.01)
    assert result["converged"] is True and result["kl_change_last_quarter_bpd"] == pytest.approx(0.03)
    assert convergence.convergence_of(str(tmp_path), tolerance=0.005)["converged"] is False
    empty = convergence.convergence_of(str(tmp_path / "no_run"))  # no curve: undecided, not converged
    assert empty["converged"] is None and math.isnan(empty["improvement_last_quarter_bpd"])
    # The run's results.json is of step 400 (later points: an extension still running): 75% of 400 is 300.
    files.write_json_atomically(str(tmp_path / "results.json"), {"steps": 400})
    assert convergence.convergence_of(str(tmp_path))["improvement_last_quarter_bpd"] == pytest.approx(0.05)


def test_the_plateau_rule_is_two_sided(tmp_path):
    from tuning import convergence

    def curve(values):
        with open(tmp_path / "curve.jsonl", "w") as stream:
            for step, value in zip((100, 200, 300, 400), values):
                stream.write(json.dumps({"step": step, "elbo_bpd": value, "kl_bpd": 0.1}) + "\n")
        return convergence.plateau_of(str(tmp_path))

    # 75% of step 400 is step 300: the change is the last point minus the third.
    assert curve([6.0, 5.5, 5.300, 5.295])["status"] == "plateau"
    assert curve([6.0, 5.5, 5.300, 5.280])["status"] == "improving"
    worse = curve([6.0, 5.5, 5.300, 5.320])  # got worse by more than the tolerance: not converged
    assert worse["status"] == "worsening" and worse["change_last_quarter_bpd"] == pytest.approx(0.02)
    assert convergence.plateau_of(str(tmp_path / "none"))["status"] is None


def test_mean_ci_is_the_student_t_interval():
    from tuning.statistics import mean_ci
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302652729 * 1.0 / np.sqrt(3), rel=1e-6)
    assert np.isnan(mean_ci([1.0])[1])


def test_bootstrap_gaps_measure_vb_against_the_gd_curve_at_matched_kl():
    from tuning.statistics import bootstrap_gaps
    exact = bootstrap_gaps(synthetic_runs(), draws=200)
    assert [row["beta"] for row in exact] == [0.02, 0.08]
    for row in exact:  # no seed noise: every resample gives the same gap, GD better by 0.1 everywhere
        assert row["gap_bpd"] == pytest.approx(0.1) and row["gap_ci_low"] == pytest.approx(0.1)
        assert row["gap_ci_high"] == pytest.approx(0.1) and row["p_gd_better"] == 1.0 and row["seeds"] == 3
    reversed_ = bootstrap_gaps(synthetic_runs(gd_shift=-0.3), draws=200)
    assert all(row["gap_bpd"] == pytest.approx(-0.2) and row["p_gd_better"] == 0.0 for row in reversed_)
    noisy = bootstrap_gaps(synthetic_runs(noise=0.05), draws=500)
    assert all(row["gap_ci_low"] < row["gap_bpd"] < row["gap_ci_high"] for row in noisy)


def test_paired_gaps_compare_each_seeds_vb_run_with_that_seeds_own_gd_curve():
    from tuning.statistics import bootstrap_gaps
    records = []
    for seed, gd_offset, vb_kl in ((0, 0.0, 0.1), (1, 0.2, 0.1), (2, 0.0, 0.3)):
        records += [{"kind": "gaussian_dropout", "strength": 0.1, "seed": seed, "kl_bpd": 0.0,
                     "elbo_bpd": 5.0 + gd_offset},
                    {"kind": "gaussian_dropout", "strength": 0.9, "seed": seed, "kl_bpd": 0.2,
                     "elbo_bpd": 4.8 + gd_offset},
                    {"kind": "variational", "strength": 0.02, "seed": seed, "kl_bpd": vb_kl, "elbo_bpd": 5.0}]
    (row,) = bootstrap_gaps(records, draws=50)
    # seed 0: GD's curve at KL 0.1 is 4.9, so VB's 5.0 is 0.1 worse; seed 1: its GD curve is 0.2 higher (5.1), VB
    # 0.1 better; seed 2: VB's KL 0.3 is beyond its GD curve (0 to 0.2), no gap
    assert row["paired_gaps"] == "0.1000 -0.1000 nan"
    assert row["paired_mean"] == pytest.approx(0.0, abs=1e-12)
    assert row["paired_ci95"] == pytest.approx(12.7062047 * np.std([0.1, -0.1], ddof=1) / np.sqrt(2), rel=1e-6)


def test_curves_group_runs_by_setting_and_average_seeds_at_shared_steps(tmp_path):
    from tuning import curves
    for name, seed, steps, rate in (("a", 0, (10, 20, 30), 0.5), ("b", 1, (10, 20), 0.5), ("c", 0, (10, 20), 0.1)):
        write_run(tmp_path / name, "gaussian_dropout", seed, 5.0, 0.1, dropout_rate=rate)
        with open(tmp_path / name / "curve.jsonl", "w") as stream:
            for step in steps:
                point = {"step": step, "elbo_bpd": 6.0 - step / 100 - seed, "kl_bpd": step / 1000}
                stream.write(json.dumps(point) + "\n")
    write_run(tmp_path / "d", "variational", 0, 5.0, 0.1, beta=0.3)  # no curve.jsonl: left out
    records = curves.load_curves([str(tmp_path)])
    groups = curves.group_by_setting(records)
    assert list(groups) == [("gaussian_dropout", 0.1), ("gaussian_dropout", 0.5)]
    assert [record["seed"] for record in groups[("gaussian_dropout", 0.5)]] == [0, 1]
    # seed 0 has steps 10, 20, 30 and seed 1 only 10, 20: the mean covers the shared steps
    steps, means = curves.mean_curve(groups[("gaussian_dropout", 0.5)], "elbo_bpd")
    assert steps == [10, 20] and means == pytest.approx([(5.9 + 4.9) / 2, (5.8 + 4.8) / 2])
    out = tmp_path / "curves.png"
    assert run_cli(curves, [str(tmp_path), "--out", str(out)]) == 0
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and not os.path.exists(f"{out}.tmp.png")
    with pytest.raises(app.UsageError, match="--out"):
        run_cli(curves, [str(tmp_path)])
    with pytest.raises(app.UsageError, match="No run with a curve"):
        run_cli(curves, [str(tmp_path / "d"), "--out", str(out)])


def test_the_grid_hands_a_new_setting_to_every_worker_while_others_run(tmp_path):
    goal = objectives.Objectives()
    oracle = tuner.make_oracle("grid", goal.keras_tuner_objective, max_trials=20, seed=1)
    oracle._set_project_dir(str(tmp_path), "p")
    hp = kt.HyperParameters()
    hypermodel(dropout_rate="0.1,0.2,0.3,0.4", seed="0,1").declare_hyperparameters(hp)
    oracle.update_space(hp)
    running = [oracle.create_trial(f"worker{index}") for index in range(4)]  # none of them has ended
    assert [trial.status for trial in running] == ["RUNNING"] * 4
    values = [(trial.hyperparameters.values["seed"], trial.hyperparameters.values["dropout_rate"]) for trial in running]
    assert values == [(0, 0.1), (0, 0.2), (0, 0.3), (0, 0.4)]
