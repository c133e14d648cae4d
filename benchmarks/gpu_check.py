"""One check for a machine with one NVIDIA GPU, ready before the machine is (minutes on it are scarce): under 8 minutes.

    python -m benchmarks.gpu_check --out=gpu_check.json         # on the GPU machine, from the repository root
    python -m benchmarks.gpu_check --cpu_dry_run --out=x.json   # here: every step at toy size, on the CPU

What it expects (it installs nothing: a lent machine may reach no registry): this repository, a Python 3.11 with the
package installed (``pip install -e '.[test]'``), and TensorFlow 2.21 seeing the GPU (its Linux wheel uses one when
the CUDA 12 libraries are present: ``pip install 'tensorflow[and-cuda]==2.21.*'``). Without a visible GPU it stops
at the first step and says so, unless ``--cpu_dry_run``.

Steps, each a subprocess with its own time limit, each recorded (ok, seconds, the last JSON line it printed, or the
end of its output) in one JSON file:
1. ``environment``: TensorFlow's version, the GPUs it sees, ``nvidia-smi -L``;
2. ``tests``: the suite's tests that exercise devices and precision (mixed precision, the samplers' exactness,
   replicas);
3. ``train_throughput_float32`` and ``_mixed_float16``: our PixelCNN++ step (in that precision) against
   ``tfd.PixelCNN`` (``benchmarks.train_throughput --quick --precision=...``: a ratio from interleaved pairs);
4. ``sampling_float32`` and ``_mixed_float16``: the cached sampler against the reference, and whether they draw the
   same images (``benchmarks.sampling --quick --precision=...``);
5. ``hybrid_float32`` and ``hybrid_mixed_float16``: HybridVAE training steps in float32 and ``mixed_float16``
   (``benchmarks.hybrid_training``);
6. ``paper_mirrored``: a short ``paper()`` training run under ``MirroredStrategy``.
``--cpu_dry_run`` runs each program of these steps once, at toy size, on the CPU (the suite runs it, so the script
cannot rot): the precision pairs only in ``mixed_float16``, float32 being the programs' default.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

GPU_TESTS = ["tests/test_precision.py", "tests/test_sampling.py", "tests/test_evaluation.py",
             "tests/test_hybrid.py::test_two_replicas_train_to_the_same_weights_as_one"]
DRY_TESTS = ["tests/test_precision.py::test_an_unknown_precision_is_refused_with_the_choices"]  # the step's plumbing


def steps(dry, scratch):
    """``[(name, command, time limit in seconds)]``: the real check, or its toy-sized dry run."""
    py = sys.executable
    environment = [py, "-c", "import json, tensorflow as tf; print(json.dumps({'tensorflow': tf.__version__, "
                   "'gpus': [d.name for d in tf.config.list_physical_devices('GPU')]}))"]
    run = [py, "-m", "trainers.cifar", f"--model_dir={os.path.join(scratch, 'mirrored')}", "--strategy=mirrored",
           "--noexport", "--image_summaries=0", "--progress=lines", "--bottleneck=gaussian_dropout",
           "--dropout_rate=0.15", f"--data_dir={os.path.join(scratch, 'tfds')}"]
    if dry:  # each program once: a float32 step differs from its mixed_float16 twin only in --precision, and the
        # float32 model paths are what the rest of the suite tests; mixed_float16 has code of its own (loss scaling)
        return [
            ("environment", environment, 60),
            ("tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", *DRY_TESTS], 120),
            ("train_throughput_mixed_float16", [py, "-m", "benchmarks.train_throughput", "--quick", "--steps=1",
                                                "--warmup=1", "--precision=mixed_float16"], 300),
            ("sampling_mixed_float16", [py, "-m", "benchmarks.sampling", "--quick", "--image_size=8", "--num_images=1",
                                        "--precision=mixed_float16"], 300),
            ("hybrid_mixed_float16", [py, "-m", "benchmarks.hybrid_training", "--presets=small", "--image_size=8",
                                      "--batch_size=2", "--steps=1", "--warmup=1", "--precision=mixed_float16"], 300),
            ("paper_mirrored", [*run, "--model_preset=small", "--dataset=shapes_tiny", "--image_size=8",
                                "--batch_size=4", "--epochs=1", "--steps_per_epoch=2", "--cpu_replicas=2"], 300),
        ]
    return [
        ("environment", environment, 120),
        ("tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", *GPU_TESTS], 240),
        *[(f"train_throughput_{precision}", [py, "-m", "benchmarks.train_throughput", "--quick",
                                             f"--precision={precision}"], 90)
          for precision in ("float32", "mixed_float16")],
        *[(f"sampling_{precision}", [py, "-m", "benchmarks.sampling", "--quick", f"--precision={precision}"], 90)
          for precision in ("float32", "mixed_float16")],
        *[(f"hybrid_{precision}", [py, "-m", "benchmarks.hybrid_training", "--presets=small,paper",
                                   "--steps=10", f"--precision={precision}"], 120)
          for precision in ("float32", "mixed_float16")],
        ("paper_mirrored", [*run, "--model_preset=paper", "--dataset=shapes", "--image_size=32", "--batch_size=32",
                            "--epochs=1", "--steps_per_epoch=30", "--log_every=10"], 180),
    ]


def last_json(text):
    """The last line of ``text`` that is a JSON object, else None."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def run_step(name, command, limit):
    began = time.time()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        ok, output = done.returncode == 0, done.stdout + done.stderr
    except subprocess.TimeoutExpired as error:
        ok, output = False, f"timed out after {limit} s\n{error.stdout or ''}"
    record = {"ok": ok, "seconds": round(time.time() - began, 1), "command": " ".join(command[1:])}
    result = last_json(output if isinstance(output, str) else output.decode())
    record["result" if result is not None else "output_tail"] = result if result is not None else output[-1500:]
    return name, record


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu_check.json", help="where the JSON results go")
    parser.add_argument("--cpu_dry_run", action="store_true", help="every step at toy size on the CPU (no GPU)")
    args = parser.parse_args()
    report = {"cpu_dry_run": args.cpu_dry_run, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "steps": {}}
    try:
        report["nvidia_smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                              timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        report["nvidia_smi"] = None
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as scratch:
        for name, command, limit in steps(args.cpu_dry_run, scratch):
            name, record = run_step(name, command, limit)
            report["steps"][name] = record
            print(f"{name}: {'ok' if record['ok'] else 'FAILED'} in {record['seconds']} s", flush=True)
            if name == "environment" and not args.cpu_dry_run and not (record.get("result") or {}).get("gpus"):
                report["error"] = "TensorFlow sees no GPU: install tensorflow[and-cuda]==2.21.* (see the docstring)"
                print(f"ERROR: {report['error']}", file=sys.stderr)
                break
            with open(args.out, "w") as stream:  # after every step: a check cut short keeps what it measured
                json.dump(report, stream, indent=2)
    with open(args.out, "w") as stream:
        json.dump(report, stream, indent=2)
    failed = [name for name, record in report["steps"].items() if not record["ok"]]
    print(f"{len(report['steps']) - len(failed)} steps ok, failed: {failed or 'none'}; results in {args.out}")
    return 1 if failed or "error" in report else 0


if __name__ == "__main__":
    sys.exit(main())
