"""tuning.extend: finished runs that miss the convergence criterion are trained further at their final rate."""

import fcntl
import os

import pytest

from gd_bottleneck.training import files, train
from gd_bottleneck.training.callbacks import read_curve
from tests.tiny_models import tiny_run
from tuning import convergence, extend


def quiet(text, flush=False):
    del text, flush


def test_the_extended_config_keeps_the_annealing_and_the_curve_spacing():
    saved = tiny_run("runs/a", None, epochs=12, curve_points=12).to_dict()
    config = extend.extended_config(saved, 3)
    assert (config.epochs, config.schedule_epochs, config.curve_points) == (15, 12, 15)
    config.check_resumable_from(saved)  # the same run, longer
    again = extend.extended_config(config.to_dict(), 3)
    assert (again.epochs, again.schedule_epochs, again.curve_points) == (18, 12, 18)


def test_a_run_missing_the_criterion_is_extended_until_the_limit_and_a_converged_one_is_left(tmp_path,
                                                                                              shapes_data_dir):
    model_dir = str(tmp_path / "run")
    train(tiny_run(model_dir, shapes_data_dir, epochs=1, curve_points=3, export=False, image_summaries=0),
          write=quiet)
    before = files.read_json(os.path.join(model_dir, "results.json"))
    assert extend.extend_run(model_dir, 1, 2, tolerance=1e9) == "converged"  # nothing to do: nothing trained
    assert files.read_json(os.path.join(model_dir, "results.json")) == before

    probed = []
    # A tolerance no run can meet: extended once (to the 2-epoch limit), then reported.
    assert extend.extend_run(model_dir, 1, 2, tolerance=-1e9, write=quiet,
                             after_extension=probed.append) == "not converged"
    after = files.read_json(os.path.join(model_dir, "results.json"))
    assert after["steps"] == 6 and after["config"]["epochs"] == 2 and after["config"]["schedule_epochs"] == 1
    assert [point["step"] for point in read_curve(os.path.join(model_dir, "curve.jsonl"))] == [1, 2, 3, 4, 5, 6]
    assert probed == [model_dir]
    # The common budget's results are kept and listed beside the extended ones.
    assert files.read_json(os.path.join(model_dir, "results_at_step_3.json")) == before
    (row,) = extend.extended_runs([str(tmp_path)])
    assert (row["budget_steps"], row["steps"], row["budget_elbo_bpd"], row["elbo_bpd"]) == (
        3, 6, before["test_elbo_bpd"], after["test_elbo_bpd"])
    assert row["converged"] == convergence.convergence_of(model_dir)["converged"]  # the real criterion's reading

    # Another process training the run: skipped, not waited for.
    with open(os.path.join(model_dir, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert extend.extend_run(model_dir, 1, 3, tolerance=-1e9, write=quiet) == "in use"
    assert extend.extend_run(str(tmp_path / "nothing"), 1, 3) == "unfinished"
    os.remove(os.path.join(model_dir, "curve.jsonl"))
    assert extend.extend_run(model_dir, 1, 3, tolerance=-1e9) == "no curve"


def test_extend_lists_and_walks_folders_and_names_bad_paths(tmp_path):
    assert extend.extended_runs([str(tmp_path)]) == []
    assert extend.extend([str(tmp_path)], 1, 2) == {}
    with pytest.raises(FileNotFoundError, match="No such file or folder"):
        extend.extend([str(tmp_path / "missing")], 1, 2)
