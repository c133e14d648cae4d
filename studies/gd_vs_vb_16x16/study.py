"""The study's runner: trains, evaluates and keeps the runs of a phase, resumably, one process per core.

    studies/gd_vs_vb_16x16/run.sh pilot                                  # one worker per core, from frozen code
    python -m studies.gd_vs_vb_16x16.study pilot --worker=0 --workers=2   # what run.sh starts per core
    python -m studies.gd_vs_vb_16x16.study pilot --status                 # what is done, running, left

A phase is a CSV of runs (``pilot.csv``, later ``main.csv``: id, bed, kind, strength, seed). Worker ``i`` of ``n``
takes the runs in file order, starting at its own offset, and skips a run another process is training (the
trainer's lock on its folder) or that is done. For each run (PLAN.md):

1. train it with ``common.flags`` + ``<bed>.flags`` in ``<home>/runs/gd_vs_vb_16x16/<phase>/<id>/`` (resumes): every
   run the same fixed budget of steps (PLAN.md section 4, as amended after the first pilots);
2. the plateau reading (tuning.convergence.plateau_of): the held-out ELBO's change over the last quarter, reported
   (plateau, improving, worsening), never used to train a run longer;
3. the bounds (trainers.evaluate: K = 16, S = 16, the first 2,000 test images, evaluation seed 0);
4. keep: copy the run's small files and its final weights (a model-only checkpoint, so the kept folder is itself a
   run folder that ``trainers.evaluate`` and ``trainers.sample`` can load) into ``results/<phase>/<id>/``, and write
   ``study.json`` there (the plateau reading, epochs, wall time, the commit of the code that made it, and the machine:
   CPU model and library versions).

``--home`` is the checkout that receives ``runs/`` and ``results/``; by default the one holding this code. run.sh
runs the code of a commit from a worktree of its own (``runs/gd_vs_vb_16x16/code/<commit>``) with ``--home`` this
checkout, so that edits made while the study runs never reach a running worker (AutoGraph re-reads a function's
source file when it converts it: RUNLOG.md, 17:34). Interrupted, a rerun resumes every step: the trainer from its
checkpoint, the rest from the kept files.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import time

from absl import app, flags

from gd_bottleneck import cli
from gd_bottleneck.errors import RunInUse, TrainingDiverged, TrainingInterrupted
from gd_bottleneck.training import checkpoints, files, machine, train
from gd_bottleneck.training.run import exclusive
from trainers import evaluate, run_flags
from tuning import convergence

FLAGS = flags.FLAGS
run_flags.define()  # the trainer's flags, parsed from the study's flag files per run (run_config)
flags.DEFINE_integer("worker", 0, "This process's index, in [0, workers).")
flags.DEFINE_integer("workers", 1, "How many processes share the phase (one per core).")
flags.DEFINE_bool("status", False, "Train nothing: print each run's state.")
flags.DEFINE_string("home", None, "The checkout whose runs/ and studies/gd_vs_vb_16x16/results/ receive the runs "
                    "(default: the one holding this code).")
flags.DEFINE_string("trainer_flags", "", "More trainer flags for every run, after the study's (a smoke test of the "
                    "runner with a few steps; never for the study's runs).")

STUDY = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(os.path.dirname(STUDY))
Z_SAMPLES, NOISE_SAMPLES, BOUND_IMAGES = 16, 16, 2000
PHOTO_SOURCES = ["matplotlib", "opencv-doc", "scikit-image", "scikit-learn"]
KEPT_FILES = ("run_config.json", "results.json", "curve.jsonl", "bounds.json")


_home = []  # set once by main(): run_config() re-parses the flags per run, which resets --home


def home():
    return _home[0] if _home else REPOSITORY


def runs_folder():
    return os.path.join(home(), "runs", "gd_vs_vb_16x16")


def code_commit():
    """The commit of the code that runs (its worktree's HEAD), with ``+edits`` when its study files differ."""
    def git(*arguments):
        return subprocess.run(["git", "-C", REPOSITORY, *arguments], capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "HEAD") or "unknown"
    return commit + ("+edits" if git("status", "--porcelain", "--untracked-files=no") else "")


def read_phase(phase):
    with open(os.path.join(STUDY, f"{phase}.csv")) as stream:
        return list(csv.DictReader(stream))


def run_config(phase, run, extra=()):
    """The run's RunConfig: the study's flag files, then its bottleneck, strength and seed (then ``extra``)."""
    strength = ({"dropout_rate": run["strength"]} if run["kind"] == "gaussian_dropout" else
                {"beta": run["strength"]} if run["kind"] == "variational" else {})
    if run["kind"] == "auxiliary_decoder":
        arguments = ["--bottleneck=none", "--aux_weight=1.0"]
    else:
        arguments = [f"--bottleneck={run['kind']}", *(f"--{name}={value}" for name, value in strength.items())]
    FLAGS.unparse_flags()
    FLAGS([sys.argv[0], f"--flagfile={os.path.join(STUDY, 'common.flags')}",
           f"--flagfile={os.path.join(STUDY, run['bed'] + '.flags')}", *arguments, f"--seed={run['seed']}",
           f"--model_dir={os.path.join(runs_folder(), phase, run['id'])}", *extra])
    return run_flags.run_config()


def kept_folder(phase, run):
    return os.path.join(home(), "studies", "gd_vs_vb_16x16", "results", phase, run["id"])


def check_bed(config):
    """Refuses a photos bed built from fewer sources than the plan's (it would be another dataset)."""
    if config.dataset != "photos":
        return
    from gd_bottleneck import data
    sources = sorted(data.prepare("photos", config.image_size, config.data_dir).info.metadata["sources"])
    if sources != PHOTO_SOURCES:
        raise SystemExit(f"ERROR: the photos bed was built from {sources}; the plan needs {PHOTO_SOURCES} "
                         "(docs/photos.md says how to install opencv-doc). Delete the built dataset and rebuild.")


def train_and_read(config, write):
    """Trains ``config`` (its fixed budget; resumes) and returns the plateau reading with the epochs trained."""
    train(config, write=write)
    return {**convergence.plateau_of(config.model_dir), "epochs": config.epochs, "code_commit": code_commit()}


def keep(config, target, reading):
    """Copies the run's small files and a model-only checkpoint of its final weights into ``target``."""
    import tensorflow as tf
    model, _, checkpoint = checkpoints.load_trained_model(config.model_dir)
    staging = target + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(os.path.join(staging, "checkpoints"))
    for name in KEPT_FILES:
        shutil.copy2(os.path.join(config.model_dir, name), staging)
    shutil.copytree(os.path.join(config.model_dir, "bounds"), os.path.join(staging, "bounds"))
    saver = tf.train.Checkpoint(model_variables=checkpoints.model_variables(model))
    saver.write(os.path.join(staging, "checkpoints", os.path.basename(checkpoint)))  # found by its .index file
    files.write_json_atomically(os.path.join(staging, "study.json"), reading)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


def run_one(phase, run, write, extra=()):
    """Does whatever the run still needs; returns its state (``"done"``, ``"in use"``, ``"diverged"``).

    One worker holds the run from training to keeping (a lock of its own in the run's folder): the trainer's lock
    alone ended with training, so a second worker reaching a run whose bounds were still being evaluated took it,
    evaluated and kept it again."""
    target = kept_folder(phase, run)
    if os.path.exists(os.path.join(target, "study.json")):
        return "done"
    config = run_config(phase, run, extra)
    try:
        with exclusive(config.model_dir, name=".study_lock", doing="running this study run"):
            if os.path.exists(os.path.join(target, "study.json")):  # kept by another worker since the check above
                return "done"
            return _run_held(config, target, run, write)
    except RunInUse:
        return "in use"


def _run_held(config, target, run, write):
    """:func:`run_one`'s work, with the run held: train, read the plateau, evaluate the bounds, keep."""
    check_bed(config)
    began = time.time()
    try:
        reading = train_and_read(config, write)
    except TrainingDiverged as error:
        write(f"{run['id']}: {error}", flush=True)
        os.makedirs(target, exist_ok=True)
        files.write_json_atomically(os.path.join(target, "study.json"), {"status": "diverged", "error": str(error)})
        return "diverged"
    evaluate.evaluate_run(config.model_dir, Z_SAMPLES, NOISE_SAMPLES, max_images=BOUND_IMAGES,
                          write=lambda text, flush=False: write(text, flush=True))
    reading["session_wall_time_s"] = round(time.time() - began, 1)
    reading["machine"] = machine.describe()  # what the wall times were measured on (sessions get different CPUs)
    keep(config, target, reading)
    write(f"{run['id']}: kept in {os.path.relpath(target, home())} ({json.dumps(reading)})", flush=True)
    return "done"


def status(phase):
    for run in read_phase(phase):
        kept = os.path.join(kept_folder(phase, run), "study.json")
        local = os.path.join(runs_folder(), phase, run["id"], "checkpoints", "checkpoint")
        state = ("kept: " + json.dumps(files.read_json(kept))) if os.path.exists(kept) else (
            "training or interrupted" if os.path.exists(local) else "not started")
        print(f"{run['id']:<24} {state}")


def main(argv):
    if len(argv) != 2 or not os.path.exists(os.path.join(STUDY, f"{argv[1]}.csv")):
        raise app.UsageError("Give one phase: the name of a CSV in the study's folder (pilot, main).")
    phase = argv[1]
    _home.append(os.path.abspath(FLAGS.home or REPOSITORY))
    if FLAGS.status:
        return status(phase)
    if not 0 <= FLAGS.worker < FLAGS.workers:
        raise app.UsageError(f"Flag --worker must be in [0, {FLAGS.workers}). Received: {FLAGS.worker}")
    runs, worker, extra = read_phase(phase), FLAGS.worker, FLAGS.trainer_flags.split()  # (run_config re-parses)
    order = runs[worker:] + runs[:worker]  # each worker starts at its own run

    def write(text, flush=False):
        print(text, flush=flush)

    try:
        states = {run["id"]: run_one(phase, run, write, extra) for run in order}
    except TrainingInterrupted as stop:  # SIGTERM/SIGINT: not an error, the checkpoint is saved and a rerun resumes
        print(f"worker {worker}: {stop}", file=sys.stderr, flush=True)
        sys.exit(130)
    print(f"worker {worker}: " + ", ".join(f"{state}: {list(states.values()).count(state)}"
                                                 for state in sorted(set(states.values()))), flush=True)


if __name__ == "__main__":
    cli.run(main, arguments=True)
