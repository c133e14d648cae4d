"""Trains the finished runs that miss the convergence criterion further, at their final learning rate, until they meet
it.

    python -m tuning.extend runs/search1 runs/search2 --extra_epochs=3 --max_epochs=24

Why: a sweep gives every run the same budget, but the strongest bottlenecks learn slowest (in the Figure 2 sweep,
Gaussian dropout p = 0.97 was still improving by 0.022 bits/dim over its last quarter after 12 epochs). A run that
misses the criterion (tuning/convergence.py) is continued in steps of ``--extra_epochs`` at the learning rate its
annealing ended on (``RunConfig.schedule_epochs`` stays the original length), which gives exactly the run that would
have been trained for the longer budget from the start (tests/test_training.py); the criterion is then checked over
the last quarter of the whole, longer run. A run that still misses it at ``--max_epochs`` is left as it is and
reported. Runs that meet the criterion, and unfinished runs (no results.json yet: their search owns them), are not
touched. The learning curve keeps its spacing (``curve_points`` grows with the epochs), and the results of the common
budget are kept as ``results_at_step_<steps>.json`` beside the new ``results.json``; ``--list`` prints both for every
extended run, so a reader sees what the extra training changed.

Several processes can share the work, one per core: each goes through the same runs and skips a run another one is
training (the trainer's lock on its folder). Interrupted, a rerun resumes the extension from its checkpoint. With
``--probe_latents``, an extended run's latents are probed again (its kept probe was of the shorter run).
"""

import os

from absl import app, flags

from gd_bottleneck import cli
from gd_bottleneck.errors import RunInUse
from gd_bottleneck.training import RunConfig, TrainingDiverged, files, train
from tuning import convergence, frontier

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_integer("extra_epochs", 3, "Epochs added to a run at a time (>= 1).", lower_bound=1)
    flags.DEFINE_integer("max_epochs", 24, "Longest a run may become; one still missing the criterion then is "
                         "reported and left (>= 1).", lower_bound=1)
    flags.DEFINE_float("tolerance", convergence.TOLERANCE_BPD, "Convergence criterion: held-out ELBO improvement "
                       "over the last quarter below this many bits/dim (> 0).", lower_bound=0.0)
    flags.DEFINE_bool("list", False, "Train nothing: print the runs extended so far, at the common budget and now.")
    flags.DEFINE_enum("probe_latents", None, ["sample", "mean"], "Probe an extended run's latents again (kept as "
                      "probe_<latents>.json); unset: no probe.")


def extended_config(saved, extra_epochs):
    """The RunConfig continuing ``saved`` (a run's config dict) for ``extra_epochs`` more epochs at its final
    learning rate: the annealing keeps its length and the learning curve its spacing."""
    epochs = saved["epochs"] + extra_epochs
    annealing = saved.get("schedule_epochs") or saved["epochs"]
    points = saved.get("curve_points", 0)
    curve_points = round(points * epochs / saved["epochs"]) if points else 0
    return RunConfig.from_dict({**saved, "epochs": epochs, "schedule_epochs": annealing,
                                "curve_points": curve_points})


def extend_run(model_dir, extra_epochs, max_epochs, tolerance=convergence.TOLERANCE_BPD, write=print,
               after_extension=None):
    """Extends the run in ``model_dir`` until it meets the criterion or reaches ``max_epochs``; returns what became
    of it: ``"converged"``, ``"not converged"`` (at ``max_epochs``), ``"unfinished"`` (no results.json), ``"no
    curve"`` (fewer than two curve points), ``"in use"`` (another process trains it) or ``"diverged"``.
    ``after_extension(model_dir)``
    runs after each extension (a probe, say)."""
    results_path = os.path.join(model_dir, "results.json")
    while True:
        if not os.path.exists(results_path):
            return "unfinished"
        converged = convergence.convergence_of(model_dir, tolerance)["converged"]
        if converged is None:
            return "no curve"  # fewer than two curve points: the criterion cannot be read
        if converged:
            return "converged"
        saved = files.read_json(results_path, required=("config", "steps"))["config"]
        if saved["epochs"] + extra_epochs > max_epochs:
            return "not converged"
        config = extended_config(saved, extra_epochs)
        kept = os.path.join(model_dir, f"results_at_step_{files.read_json(results_path)['steps']}.json")
        if not os.path.exists(kept):
            files.write_json_atomically(kept, files.read_json(results_path))
        write(f"{model_dir}: missed the criterion after {saved['epochs']} epochs; training to {config.epochs} at "
              f"the final learning rate", flush=True)
        try:
            train(config, write=write)
        except RunInUse:
            return "in use"
        except TrainingDiverged as error:
            write(f"{model_dir}: {error}", flush=True)
            return "diverged"
        if after_extension is not None:
            after_extension(model_dir)


def extend(paths, extra_epochs, max_epochs, tolerance=convergence.TOLERANCE_BPD, probe_latents=None, write=print):
    """Extends every finished run under ``paths`` that misses the criterion; returns ``{model_dir: outcome}``."""
    after = None
    if probe_latents:
        from tuning import probe
        after = lambda model_dir: probe.probe_folder(model_dir, probe_latents)
    outcomes = {}
    for path in frontier.find_results(paths):
        model_dir = os.path.dirname(path)
        outcomes[model_dir] = extend_run(model_dir, extra_epochs, max_epochs, tolerance, write, after)
    return outcomes


def extended_runs(paths):
    """One row per extended run under ``paths``: its setting, and steps, test ELBO and KL (bits/dim) at the common
    budget (the first ``results_at_step_*.json``) and now, with the criterion's reading now."""
    rows = []
    for record in frontier.load_runs(paths):
        model_dir = os.path.dirname(record["path"])
        kept = sorted((name for name in os.listdir(model_dir) if name.startswith("results_at_step_")),
                      key=lambda name: int(name[len("results_at_step_"):-len(".json")]))
        if not kept:
            continue
        budget = files.read_json(os.path.join(model_dir, kept[0]))
        rows.append({"kind": record["kind"], "strength": record["strength"], "seed": record["seed"],
                     "budget_steps": budget["steps"], "steps": record["steps"],
                     "budget_elbo_bpd": budget["test_elbo_bpd"], "elbo_bpd": record["elbo_bpd"],
                     "budget_kl_bpd": budget["test_kl_bpd"], "kl_bpd": record["kl_bpd"],
                     "improvement_last_quarter_bpd": record["improvement_last_quarter_bpd"],
                     "converged": record["converged"]})
    return rows


def main(argv):
    """``argv[1:]``: run folders, or folders holding them (found by their results.json)."""
    if len(argv) < 2:
        raise app.UsageError("Give run folders, or folders holding them.")
    if FLAGS.list:
        rows = extended_runs(argv[1:])
        print(f"{len(rows)} extended runs (test split, bits/dim; budget_*: at the common budget, before the "
              "extension)")
        if rows:
            print(frontier.format_table(rows, list(rows[0])))
        return 0
    try:
        outcomes = extend(argv[1:], FLAGS.extra_epochs, FLAGS.max_epochs, FLAGS.tolerance, FLAGS.probe_latents)
    except FileNotFoundError as error:
        raise app.UsageError(str(error))
    missed = [model_dir for model_dir, outcome in outcomes.items() if outcome == "not converged"]
    counts = {outcome: list(outcomes.values()).count(outcome) for outcome in sorted(set(outcomes.values()))}
    print(f"{len(outcomes)} runs: " + ", ".join(f"{count} {outcome}" for outcome, count in counts.items()))
    for model_dir in missed:
        print(f"{model_dir}: still misses the criterion at --max_epochs={FLAGS.max_epochs}")
    return 0


def run():
    """Console-script entry point (see setup.cfg)."""
    define_flags()
    cli.run(main, arguments=True)


if __name__ == "__main__":
    run()
