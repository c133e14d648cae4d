"""The trainer's flags without training: fast flag errors in subprocesses, every flagfile and its header, CIFAR-10
through gd.flags with tfds' mock data."""

import glob
import os
import re
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from absl import flags
from absl.testing import flagsaver

from gd_bottleneck.training import train
from tests.cli_runs import REPO, Run
from tests.tiny_models import RUN_FLAGS


def test_bad_flags_fail_before_anything_heavy_with_the_flag_named(tmp_path):
    """The trainer, export and sample CLIs, started concurrently (each spends its ~5 s importing TensorFlow)."""
    cases = {  # name: (run, expected message)
        "dropout_rate": (Run(tmp_path / "run1", tmp_path / "data", "--dropout_rate=1.5"),
                         "Flag `--dropout_rate` must be in the range [0, 1)"),
        "bottleneck": (Run(tmp_path / "run2", tmp_path / "data", "--bottleneck=vae"), "--bottleneck"),
        "out": (Run.tool("trainers.sample", tmp_path / "missing", "--out=samples.jpg"),
                "Flag --out must name a .png file"),
        "num": (Run.tool("trainers.sample", tmp_path / "missing", "--num=0"), "--num"),
        "model_dir": (Run.tool("trainers.export", tmp_path / "missing", "--export_dir=x"),
                      "has no run_config.json"),
        "console_script": (Run(tmp_path / "missing", None, command=[  # the installed entry point (setup.cfg)
            os.path.join(os.path.dirname(sys.executable), "gd-sample"), f"--model_dir={tmp_path / 'missing'}"]),
            "has no run_config.json"),
    }
    for name, (run, message) in cases.items():
        run.wait()
        assert run.process.returncode != 0, name
        assert message in run.stderr + run.stdout, (name, run.stderr[-2000:])
    assert not any((tmp_path / name).exists() for name in ("run1", "run2", "data", "missing", "x"))


@pytest.mark.parametrize("flagfile, expected", [
    ("gd.flags", {"bottleneck": "gaussian_dropout", "dropout_rate": 0.15, "model_preset": "paper", "epochs": 350}),
    ("vb.flags", {"bottleneck": "variational", "beta": 0.02, "dataset": "cifar10", "final_learning_rate": 4e-6}),
    ("baseline.flags", {"bottleneck": "none", "aux_weight": 0.0, "adam_epsilon": 1e-8}),
    ("aux.flags", {"bottleneck": "none", "aux_weight": 1.0, "learning_rate": 1e-4}),
    ("demo.flags", {"dataset": "shapes", "image_size": 16, "model_preset": "small"}),
])
def test_every_flagfile_describes_a_valid_run(flagfile, expected, monkeypatch):
    monkeypatch.chdir(REPO)
    from trainers import run_flags
    run_flags.define()
    with flagsaver.flagsaver():
        flags.FLAGS(["cifar", f"--flagfile={flagfile}"])
        config = run_flags.run_config()
    for name, value in expected.items():
        assert getattr(config, name) == value, name


def test_gd_flags_trains_on_cifar10_offline_with_a_step_cap(tmp_path, monkeypatch):
    """gd.flags as a user runs it, with tfds' mocked CIFAR-10 (no download), a tiny model and a 2-step cap."""
    monkeypatch.chdir(REPO)
    from trainers import run_flags
    run_flags.define()
    with flagsaver.flagsaver():
        flags.FLAGS(["cifar", "--flagfile=gd.flags", f"--model_dir={tmp_path}", *RUN_FLAGS,
                     "--batch_size=4", "--steps_per_epoch=2", "--epochs=1", "--strategy=default",
                     "--image_summaries=0", "--progress=lines", "--noexport", "--precision=mixed_bfloat16"])
        config = run_flags.run_config()
    from gd_bottleneck.data import pipeline
    monkeypatch.setattr(pipeline, "_check_source_reachable", lambda dataset, manual_dir: None)  # mocked: no download
    with tfds.testing.mock_data(num_examples=8):
        results = train(config, write=lambda text, flush=False: None)
    assert results["steps"] == 2 and results["config"]["dataset"] == "cifar10" and results["test_images"] == 8
    assert np.isfinite(results["test_elbo_bpd"]) and results["config"]["dropout_rate"] == 0.15
    assert results["config"]["model_overrides"]["precision"] == "mixed_bfloat16"


def test_an_unknown_precision_flag_is_refused_with_the_choices():
    from trainers import run_flags
    run_flags.define()
    with flagsaver.flagsaver(), pytest.raises(flags.IllegalFlagValueError, match="mixed_bfloat16"):
        flags.FLAGS(["cifar", "--precision=float16"])


@pytest.mark.parametrize("flagfile", sorted(glob.glob(os.path.join(REPO, "*.flags")) +
                                            glob.glob(os.path.join(REPO, "tuning", "*.flags"))))
def test_every_flagfile_header_names_its_command_and_cites_files_that_exist(flagfile):
    header = "\n".join(line for line in open(flagfile).read().splitlines() if line.startswith("#"))
    assert "python -m " in header or "make " in header, flagfile  # how to run it
    cited = re.findall(r"\b((?:results|docs)/[\w./-]*\w)", header)
    assert cited, f"{flagfile}: the header cites no results file or figure for its numbers"
    for path in cited:
        assert os.path.exists(os.path.join(REPO, path)), f"{flagfile} cites {path}, which does not exist"
