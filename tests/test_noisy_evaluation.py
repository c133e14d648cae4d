"""tuning.noisy_evaluation: the test ELBO with the bottleneck's noise kept, and per-run results kept by step."""

import os

import numpy as np
import pytest

from gd_bottleneck import HybridVAE
from gd_bottleneck.training import files, train
from tests.tiny_models import TINY, tiny_run
from tuning import kept_results, noisy_evaluation


def test_the_noise_is_on_inside_the_context_only_and_for_the_bottleneck_only():
    model = HybridVAE(TINY, bottleneck="gaussian_dropout", dropout_rate=0.5, seed=3)
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3)).astype(np.float32)
    before = model.elbo(images)["elbo_bpd"].numpy()
    with noisy_evaluation.bottleneck_noise_at_test(model):
        noisy = [model.elbo(images)["elbo_bpd"].numpy() for _ in range(2)]
        kl = model.elbo(images)["kl_bpd"].numpy()
    after = model.elbo(images)["elbo_bpd"].numpy()
    np.testing.assert_array_equal(after, before)  # test mode again: no noise, the same z
    assert not np.allclose(noisy[0], before) and not np.allclose(noisy[0], noisy[1])  # a new draw per call
    np.testing.assert_array_equal(kl, model.elbo(images)["kl_bpd"].numpy())  # the encoder and z are untouched
    assert "transform" not in vars(model.bottleneck_layer)


def test_a_trained_runs_noise_free_elbo_is_its_evaluation_and_the_result_is_kept(tmp_path, shapes_data_dir):
    model_dir = str(tmp_path / "run")
    results = train(tiny_run(model_dir, shapes_data_dir, dropout_rate=0.5, export=False, image_summaries=0),
                    write=lambda text, flush=False: None)
    result = noisy_evaluation.evaluate_folder(model_dir, draws=2)
    assert result["noise_free_elbo_bpd"] == pytest.approx(results["test_elbo_bpd"], rel=1e-5)
    assert result["noisy_elbo_bpd"] != result["noise_free_elbo_bpd"]  # (6 steps: v is hardly used yet)
    kept = files.read_json(os.path.join(model_dir, "noisy_evaluation.json"))
    assert kept == {"steps": results["steps"], "result": result}
    # Kept: read back without the checkpoint; for another step count (the run trained further), not used.
    os.rename(os.path.join(model_dir, "checkpoints"), os.path.join(model_dir, "moved"))
    assert noisy_evaluation.evaluate_folder(model_dir, draws=2) == result
    files.write_json_atomically(os.path.join(model_dir, "noisy_evaluation.json"), {**kept, "steps": 1})
    assert noisy_evaluation.evaluate_folder(model_dir, draws=2) is None


def test_kept_result_computes_once_per_step_count(tmp_path):
    folder = tmp_path / "run"
    os.makedirs(folder / "checkpoints")
    files.write_json_atomically(str(folder / "results.json"), {"steps": 10})
    calls = []
    assert kept_results.kept_result(str(folder), "thing", lambda: calls.append(1) or 1.5) is None  # no checkpoint
    (folder / "checkpoints" / "ckpt-10.index").write_bytes(b"")  # a checkpoint on disk (never read here)
    assert kept_results.kept_result(str(folder), "thing", lambda: calls.append(1) or 1.5, note="x") == 1.5
    assert kept_results.kept_result(str(folder), "thing", lambda: calls.append(1) or 2.5) == 1.5
    assert calls == [1]
    assert files.read_json(str(folder / "thing.json")) == {"note": "x", "steps": 10, "result": 1.5}
    (folder / "checkpoints" / "ckpt-20.index").write_bytes(b"")  # being trained further: not computed meanwhile
    assert kept_results.kept_result(str(folder), "thing", lambda: calls.append(1) or 2.5) == 1.5
    files.write_json_atomically(str(folder / "results.json"), {"steps": 20})  # trained further: computed again
    assert kept_results.kept_result(str(folder), "thing", lambda: calls.append(1) or 2.5) == 2.5
    (folder / "checkpoints" / "ckpt-30.index").write_bytes(b"")
    files.write_json_atomically(str(folder / "results.json"), {"steps": 30})
    os.remove(folder / "thing.json")
    os.rename(folder / "checkpoints" / "ckpt-30.index", folder / "checkpoints" / "ckpt-25.index")
    assert kept_results.kept_result(str(folder), "thing", lambda: pytest.fail("not of the results' step")) is None


def test_settings_are_averaged_and_gd_with_noise_is_paired_with_vb_seed_by_seed():
    def row(kind, strength, seed, kl, noise_free, noisy):
        return {"kind": kind, "strength": strength, "seed": seed, "kl_bpd": kl, "noise_free_elbo_bpd": noise_free,
                "noisy_elbo_bpd": noisy}

    rows = [row("gaussian_dropout", 0.9, 0, 0.2, 6.0, 5.5), row("gaussian_dropout", 0.9, 1, 0.3, 6.2, 5.7),
            row("variational", 1.0, 0, 0.1, 5.8, 5.9), row("variational", 1.0, 1, 0.2, 5.9, 6.0),
            row("variational", 0.3, 2, 0.2, 5.0, 5.1)]  # no seed shared with GD: no pair
    means = {(m["kind"], m["strength"]): m for m in noisy_evaluation.setting_means(rows)}
    assert means[("gaussian_dropout", 0.9)]["noisy_elbo_bpd_mean"] == pytest.approx(5.6)
    assert means[("gaussian_dropout", 0.9)]["n"] == 2 and np.isnan(means[("variational", 0.3)]["kl_bpd_ci95"])
    (pair,) = noisy_evaluation.noisy_gd_against_vb(rows)
    # GD's noisy ELBO against VB's noise-free one: 5.5 - 5.8 and 5.7 - 5.9; t(1) interval of (-0.3, -0.2)
    assert (pair["gd_rate"], pair["vb_beta"], pair["seeds"]) == (0.9, 1.0, 2)
    assert pair["elbo_bpd_diff_mean"] == pytest.approx(-0.25)
    assert pair["elbo_bpd_diff_ci95"] == pytest.approx(12.706 * 0.05 / np.sqrt(2) * np.sqrt(2), rel=1e-3)
    assert pair["kl_bpd_diff_mean"] == pytest.approx(0.1) and pair["kl_bpd_diff_ci95"] == pytest.approx(0.0)
