"""Does PixelCNN++'s training recipe (weight norm + data-dependent init, Polyak averaging) help at CPU scale?

    python -m studies.recipe_ablation.recipe_ablation --out=studies/recipe_ablation/results   # 4 variants x 2 seeds

Trains small() on the embedded 8x8 shapes with Gaussian dropout p=0.15 (the Figure 2 protocol's settings, for
``--epochs`` epochs of 593 steps) four ways: plain, ``--weight_norm``, ``--polyak_decay``, both; each for every
seed, one trainer process per CPU core. Writes ``results.json`` (every run's test ELBO/KL and seconds per step) and
prints a table of the means. Rerunning resumes or reuses finished runs (their folders are under ``--runs``).
"""

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

VARIANTS = {"plain": [], "weight_norm": ["--weight_norm"], "polyak": ["--polyak_decay={decay}"],
            "weight_norm+polyak": ["--weight_norm", "--polyak_decay={decay}"]}


def base_flags(epochs):
    return ["--dataset=shapes", "--image_size=8", "--model_preset=small", "--bottleneck=gaussian_dropout",
            "--dropout_rate=0.15", "--batch_size=32", f"--epochs={epochs}", "--steps_per_epoch=593",
            "--learning_rate=1e-3", "--final_learning_rate=1e-4", "--lr_schedule=exponential",
            "--validation_examples=1000", "--noexport", "--image_summaries=0", "--progress=lines",
            "--log_every=593", "--checkpoint_every=593"]


def run(name, flags, runs, core):
    model_dir = os.path.join(runs, name)
    command = [sys.executable, "-m", "trainers.cifar", f"--model_dir={model_dir}", *flags]
    with open(model_dir + ".log", "w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True,
                       preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    with open(os.path.join(model_dir, "results.json")) as file:
        results = json.load(file)
    return {"run": name, "test_elbo_bpd": results["test_elbo_bpd"], "test_kl_bpd": results["test_kl_bpd"],
            "validation_elbo_bpd": results["validation_elbo_bpd"],
            "s_per_step": results["wall_time_s"] / results["steps"], "steps": results["steps"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="studies/recipe_ablation/results")
    parser.add_argument("--runs", default="runs/recipe_ablation")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--polyak_decay", type=float, default=0.999)
    args = parser.parse_args()
    os.makedirs(args.runs, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    jobs = [(f"{variant}_seed{seed}", base_flags(args.epochs) + [f"--seed={seed}"] +
             [flag.format(decay=args.polyak_decay) for flag in flags])
            for seed in args.seeds.split(",") for variant, flags in VARIANTS.items()]
    cores = sorted(os.sched_getaffinity(0))
    with ThreadPoolExecutor(len(cores)) as pool:
        futures = [pool.submit(run, name, flags, args.runs, cores[index % len(cores)])
                   for index, (name, flags) in enumerate(jobs)]
        rows = [future.result() for future in futures]
    summary = []
    for variant in VARIANTS:
        mine = [row for row in rows if row["run"].rsplit("_seed", 1)[0] == variant]
        summary.append({"variant": variant, "n": len(mine),
                        **{key: round(float(np.mean([row[key] for row in mine])), 4)
                           for key in ("test_elbo_bpd", "test_kl_bpd", "validation_elbo_bpd", "s_per_step")}})
        print(json.dumps(summary[-1]))
    command = " ".join(["python -m studies.recipe_ablation.recipe_ablation", *sys.argv[1:]])
    with open(os.path.join(args.out, "results.json"), "w") as file:
        json.dump({"command": command, "polyak_decay": args.polyak_decay, "epochs": args.epochs,
                   "summary": summary, "runs": rows}, file, indent=1)


if __name__ == "__main__":
    main()
