"""A search in TensorBoard's HParams dashboard: each trial's settings and scores as an HParams session.

    tensorboard --logdir <directory>/<project_name>/hparams

KerasTuner feeds the dashboard only through a Keras ``TensorBoard`` callback passed to ``model.fit``; our trials run
the project's trainer instead, so each completed trial writes its session here itself: ``hparams/trial_<id>/`` holds
the tuned values (only those that apply to the trial) and, as scalars at the trial's final step, every score of the
search's objective (``tuning.objectives``) and the run's test ELBO and KL. The dashboard's table, parallel
coordinates and scatter views then compare trials; the runs' own curves stay in each trial's ``run/tensorboard``.
"""

import os

SCALARS = ("test_elbo_bpd", "test_kl_bpd")


def trial_folder(project_folder, trial_id):
    return os.path.join(project_folder, "hparams", f"trial_{trial_id}")


def write_trial(project_folder, trial_id, values, scores, results):
    """Writes trial ``trial_id``'s session: ``values`` (tuned name -> value), ``scores`` (name -> float) and the
    run's ``results`` (its results.json; the SCALARS it has) at step ``results["steps"]``."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    writer = tf.summary.create_file_writer(trial_folder(project_folder, trial_id))
    step = int(results.get("steps", 0))
    with writer.as_default():
        hp.hparams(values, trial_id=str(trial_id))
        for name, value in {**scores, **{key: results[key] for key in SCALARS if key in results}}.items():
            tf.summary.scalar(name, float(value), step=step)
    writer.close()
