"""Search the trainer's settings with KerasTuner: grid, random, Bayesian or Hyperband.

    python -m tuning.search --flagfile=demo.flags --tuner=random --max_trials=8 --directory=runs/search \\
        --tune_bottleneck=gaussian_dropout,variational --tune_dropout_rate=0.05:0.95 --tune_beta=0.01:1:log \\
        --objective=elbo_bpd_at_kl --min_kl_bpd=0.05 --validation_examples=2000 --objective_split=validation

Every trainer flag (python -m trainers.cifar --helpfull) sets what all trials share; ``--tune_<setting>`` makes a
setting vary (a list ``a,b,c`` or a range ``LOW:HIGH[:log]``, see tuning/space.py). Trials are trainer runs in
``<directory>/<project_name>/trial_<id>/run``; rerunning the same command resumes the search (a trial that was running
resumes from its checkpoint), and a different search in that folder is refused (tuning/identity.py).
Distributed: start one chief and any number of workers with the same command and ``KERASTUNER_ORACLE_IP``,
``KERASTUNER_ORACLE_PORT`` and ``KERASTUNER_TUNER_ID`` (``chief`` for the chief, unique ids such as ``tuner0`` for
workers); the chief only serves the oracle, the workers run trials.
"""

import os
import sys

import grpc
import keras_tuner as kt
from absl import app, flags

from gd_bottleneck import cli
from gd_bottleneck.training import strategies
from trainers import run_flags
from tuning import identity, noisy_evaluation, objectives, probe, space
from tuning import tuner as tuner_module
from tuning.hypermodel import TrainerHyperModel
from tuning.tuner import TUNERS, TrainerTuner, make_oracle, trial_rows

FLAGS = flags.FLAGS
run_flags.define()  # the trainer's flags: what all trials share
flags.adopt_module_key_flags(run_flags)  # listed by --helpshort as this program's own
flags.DEFINE_enum("tuner", "random", list(TUNERS), "Search strategy (KerasTuner oracle).")
flags.DEFINE_integer("max_trials", 10, "Most trials to run (grid: stops earlier when the grid is exhausted; "
                     "hyperband: ignored, its budget is --max_epochs and --hyperband_factor).")
flags.DEFINE_string("directory", None, "Folder of the search (required); trials are in <directory>/<project_name>.")
flags.DEFINE_string("project_name", "search", "Name of the search inside --directory.")
flags.DEFINE_bool("overwrite", False, "Start the search over (default: resume the one in --directory).")
flags.DEFINE_enum("objective", "elbo_bpd", list(objectives.NAMES), "What to optimise: elbo_bpd (min), kl_bpd (max), "
                  "elbo_bpd_at_kl (min ELBO subject to KL >= --min_kl_bpd).")
flags.DEFINE_enum("objective_split", "test", list(objectives.SPLITS), "Split scored by the objective; validation "
                  "needs --validation_examples > 0.")
flags.DEFINE_float("min_kl_bpd", None, "KL constraint T (bits/dim) of --objective=elbo_bpd_at_kl.")
flags.DEFINE_float("kl_penalty", objectives.DEFAULT_PENALTY, "Score per bit/dim of KL below --min_kl_bpd.")
flags.DEFINE_integer("max_epochs", None, "Hyperband: epochs of the longest trials (required with --tuner=hyperband).")
flags.DEFINE_integer("hyperband_factor", 3, "Hyperband: reduction factor between brackets.")
flags.DEFINE_integer("max_consecutive_failed_trials", 3, "Stop the search after this many failed trials in a row.")
flags.DEFINE_enum("probe_latents", None, list(probe.LATENTS), "After each trial, probe what its latents carry "
                  "(tuning.probe, shapes datasets only) and keep the result in the run folder as "
                  "probe_<latents>.json: the checkpoints a probe needs are not kept with a sweep's results.")
flags.DEFINE_integer("noisy_evaluation_draws", 0, "After each trial, also score its test ELBO with the bottleneck's "
                     "noise kept, averaged over this many draws (tuning.noisy_evaluation), kept in the run folder as "
                     "noisy_evaluation.json; 0: not done.", lower_bound=0)
flags.DEFINE_bool("leave_when_idle", False, "A worker leaves when the oracle has no new trial for it (a grid whose "
                  "last trials other workers run) instead of waiting; studies/figure2_8x8/run.sh uses it so that each "
                  "core moves on to the next search.")
for _name in space.TUNABLE:
    flags.DEFINE_string(f"tune_{_name}", None, f"Vary {_name}: values a,b,c or a range LOW:HIGH[:log].")


def tuner_from_flags(write=print):
    """The TrainerTuner the flags describe (``ValueError`` naming the flag on bad values)."""
    if FLAGS.directory is None:
        raise ValueError("Flag `--directory` is required (where the search and its trials are written).")
    if FLAGS.probe_latents and FLAGS.dataset not in ("shapes", "shapes_tiny"):
        raise ValueError(f"Flag `--probe_latents` needs the shapes dataset's scene factors "
                         f"(--dataset={FLAGS.dataset}).")
    base = run_flags.run_settings()
    if not FLAGS["export"].present:  # a search's trials are many runs: each exports only when asked (--export)
        base["export"] = False
    tunables = space.parse_all({name: FLAGS[f"tune_{name}"].value for name in space.TUNABLE})
    if FLAGS.tuner == "grid":
        ranged = [tunable.name for tunable in tunables if not tunable.values]
        if ranged:
            raise ValueError(f"Flag `--tuner=grid` needs lists of values, not ranges, for {ranged}.")
    if FLAGS.tuner == "hyperband" and FLAGS.max_epochs is None:
        raise ValueError("Flag `--max_epochs` is required with --tuner=hyperband.")
    hypermodel = TrainerHyperModel(base, tunables)
    goal = objectives.Objectives(FLAGS.objective, FLAGS.objective_split, FLAGS.min_kl_bpd, FLAGS.kl_penalty)
    if FLAGS.objective_split == "validation" and not FLAGS.validation_examples:
        raise ValueError("Flag `--objective_split=validation` needs --validation_examples > 0.")
    oracle = make_oracle(FLAGS.tuner, goal.keras_tuner_objective, FLAGS.max_trials, FLAGS.seed, FLAGS.max_epochs,
                         FLAGS.hyperband_factor, FLAGS.max_consecutive_failed_trials)
    after_trial = after_trial_hook(FLAGS.probe_latents, FLAGS.noisy_evaluation_draws)
    folder = os.path.join(FLAGS.directory, FLAGS.project_name)
    search = identity.search_identity(
        FLAGS.tuner, {"seed": FLAGS.seed, "max_trials": FLAGS.max_trials, "max_epochs": FLAGS.max_epochs,
                      "hyperband_factor": FLAGS.hyperband_factor},
        {"objective": FLAGS.objective, "split": FLAGS.objective_split, "min_kl_bpd": FLAGS.min_kl_bpd,
         "kl_penalty": FLAGS.kl_penalty}, base, tunables)
    if not FLAGS.overwrite:
        identity.check(folder, search)
    tuner = TrainerTuner(hypermodel, goal, oracle, write=write, after_trial=after_trial,
                         leave_when_idle=FLAGS.leave_when_idle, directory=FLAGS.directory,
                         project_name=FLAGS.project_name, overwrite=FLAGS.overwrite)
    if os.environ.get("KERASTUNER_TUNER_ID", "chief") == "chief":  # one writer
        identity.record(folder, search)
    return tuner


def after_trial_hook(latents, noisy_draws=0):
    """The tuner's ``after_trial`` (None when neither is asked for): ``--probe_latents`` probes the run and
    ``--noisy_evaluation_draws`` scores it with the bottleneck's noise, each kept in the run folder while its
    checkpoint is on this machine; returns a summary line."""
    if not latents and not noisy_draws:
        return None
    inputs, test_images = {}, {}  # the test split, loaded once per worker (with its factors, for the probe)

    def after_trial(model_dir):
        notes = []
        if latents:
            r2 = probe.probe_folder(model_dir, latents, inputs)
            notes.append("no checkpoint to probe" if r2 is None else
                         "probe R^2 " + ", ".join(f"{name} {value:.3f}" for name, value in r2.items()))
        if noisy_draws:
            scores = noisy_evaluation.evaluate_folder(model_dir, noisy_draws, test_images)
            notes.append("no checkpoint to evaluate" if scores is None else
                         f"test ELBO noise off {scores['noise_free_elbo_bpd']:.4f}, with the bottleneck's noise "
                         f"{scores['noisy_elbo_bpd']:.4f} bits/dim")
        return "; ".join(notes)

    return after_trial


def report(tuner, write=print):
    """Prints every trial (failed ones with their reason) and the best one; returns the rows."""
    rows = trial_rows(tuner)
    for row in rows:
        write("  ".join(f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}"
                        for key, value in row.items()))
    done = [row for row in rows if row["status"] == "COMPLETED" and "elbo_bpd" in row]
    best = tuner.objectives.best_feasible(done)
    failed = [row["trial"] for row in rows if row["status"] in ("FAILED", "INVALID")]
    if failed:
        write(f"{len(failed)} trial(s) failed: {failed} (reasons above; tracebacks in the oracle's trial.json files)")
    if best is None:
        write("No trial completed.")
    elif tuner.objectives.shortfall(best["kl_bpd"]) > 0:
        write(f"No completed trial reaches KL >= {tuner.objectives.min_kl_bpd} bits/dim (of {len(done)} completed, "
              f"the best ELBO: trial {best['trial']}, elbo_bpd={best['elbo_bpd']:.4f}, kl_bpd={best['kl_bpd']:.4f}).")
    else:
        write(f"Best trial: {best['trial']}  elbo_bpd={best['elbo_bpd']:.4f}  kl_bpd={best['kl_bpd']:.4f}  "
              f"run folder: {tuner.trial_model_dir(best['trial'])}")
    return rows


def main(argv):
    if FLAGS.intra_op_threads > 0:  # process-wide, so before anything of the search runs a TensorFlow op
        strategies.set_intra_op_threads(FLAGS.intra_op_threads)
    try:
        tuner = tuner_from_flags()
    except ValueError as error:
        raise app.UsageError(str(error).replace("Argument `", "Flag `--"))
    try:
        tuner.search()
    except kt.errors.FatalError as error:  # the trainer's SIGTERM/SIGINT message: the trial has a checkpoint
        print(error, file=sys.stderr)
        sys.exit(130)
    except grpc.RpcError as error:  # a worker whose chief has ended (see tuner._give_up_on_an_ended_chief)
        # No chief: the call times out. A chief that ends while it answers (its search just finished) closes the
        # connection: UNAVAILABLE.
        ended = {grpc.StatusCode.DEADLINE_EXCEEDED: f"did not answer within {tuner_module.LEAVER_ORACLE_TIMEOUT_S} s",
                 grpc.StatusCode.UNAVAILABLE: "closed the connection"}.get(error.code())
        if not (FLAGS.leave_when_idle and ended):
            raise
        print(f"The chief of {FLAGS.directory}/{FLAGS.project_name} {ended}: its search has ended; leaving it.",
              flush=True)
        return
    if os.environ.get("KERASTUNER_TUNER_ID", "chief") == "chief":  # workers leave the report to the chief
        report(tuner)


def run():
    """Console-script entry point (see setup.cfg)."""
    cli.run(main)


if __name__ == "__main__":
    run()
