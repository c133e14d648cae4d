"""Small per-run results computed from a run's checkpoint and kept beside its ``results.json``.

Why: the Figure 2 sweep commits each run's ``results.json`` and learning curve but not its checkpoints (too large),
so anything else read from the trained weights (a linear probe of the latents, an evaluation with the bottleneck's
noise) is computed once, on the machine that trained the run, and kept as a small JSON file in the run's folder.
The file names the run's step count (``results.json``'s ``steps``) and is used only while that is the run's, so a
run trained further (tuning.extend) is computed again.
"""

import os

from gd_bottleneck.training import checkpoints, files


def kept_result(model_dir, name, compute, **details):
    """The result kept in ``model_dir/<name>.json`` for the run's current step count, else ``compute()`` (kept with
    ``details``) when the run's newest checkpoint is of that step, else None (no checkpoint, or the run is being
    trained further: its checkpoints are already past its results.json)."""
    path = os.path.join(model_dir, f"{name}.json")
    results = os.path.join(model_dir, "results.json")
    steps = files.read_json(results, required=("steps",))["steps"] if os.path.exists(results) else None
    if os.path.exists(path):
        kept = files.read_json(path)
        if kept.get("steps") == steps:
            return kept["result"]
    newest = checkpoints.candidates(os.path.join(model_dir, "checkpoints"))
    if not newest or checkpoints.step_of(newest[0]) != steps:
        return None  # no checkpoint, or one of a run being trained further than its results.json
    result = compute()
    files.write_json_atomically(path, {**details, "steps": steps, "result": result})
    return result
