"""The benchmarks' own measuring code: the step profiler counts each executed kernel once, and nothing else."""

import json
import subprocess
import sys

import pytest
import tensorflow as tf

from benchmarks import step_profile
from tests.cli_runs import REPO, environment


@pytest.mark.parametrize("name, kind", [("MatMul:MatMul", "MatMul"), ("dense/add:AddV2", "AddV2"),
                                        ("conv/Conv2D:_FusedConv2D", "_FusedConv2D"), ("x:_", None),
                                        ("ExecutorState::Process", None), ("ThreadpoolListener::Record", None),
                                        ("EagerLocalExecute: __inference_f_16", None), ("f", None),
                                        ("KernelAndDeviceFunc::Run", None)])
def test_op_type_reads_kernel_events_and_nothing_else(name, kind):
    assert step_profile.op_type(name) == kind


def test_summarize_averages_per_step_and_sorts_by_time():
    events = [("Conv2D", 3_000_000_000), ("Conv2D", 1_000_000_000), ("Elu", 500_000_000), ("Mul", 100_000_000)]
    rows, totals = step_profile.summarize(events, steps=2)
    assert [row["op"] for row in rows] == ["Conv2D", "Elu", "Mul"]
    assert rows[0] == {"op": "Conv2D", "count": 1.0, "ms": 2.0}  # 4 ms over 2 steps
    assert totals == {"ops_per_step": 2.0, "op_ms_per_step": pytest.approx(2.3)}


def test_profile_counts_each_kernel_of_a_function_once_per_call():
    @tf.function
    def step(x):
        return tf.reduce_sum(tf.nn.relu(tf.matmul(x, x)) + 1.0)

    x = tf.random.normal([32, 32])
    step(x)  # traced outside the profile

    def run_steps(n):
        for _ in range(n):
            step(x).numpy()

    counts = {}
    for kind, _ in step_profile.profile(run_steps, 3):
        # oneDNN renames the kernels it takes over on some CPUs (MatMul runs as _MklMatMul with AVX-512, not AVX2).
        kind = kind.removeprefix("_Mkl")
        counts[kind] = counts.get(kind, 0) + 1
    # The function call itself (a container) and the profiler's bookkeeping are not counted; its 4 kernels are.
    assert {kind: counts.get(kind) for kind in ("MatMul", "Relu", "AddV2", "Sum")} == {
        "MatMul": 3, "Relu": 3, "AddV2": 3, "Sum": 3}
    assert not set(counts) & step_profile.CONTAINERS


def test_the_gpu_check_runs_every_step_on_the_cpu(tmp_path):
    """benchmarks.gpu_check's dry run: the GPU machine's script, every step at toy size, so it cannot rot."""
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--cpu_dry_run", f"--out={out}"],
                          cwd=REPO, env=environment(), capture_output=True, text=True, timeout=1200)
    report = json.loads(out.read_text())
    failed = {name: record for name, record in report["steps"].items() if not record["ok"]}
    assert done.returncode == 0 and not failed, (failed, done.stdout[-2000:])
    assert list(report["steps"]) == ["environment", "tests", "train_throughput", "sampling", "hybrid_float32",
                                     "hybrid_mixed_float16", "paper_mirrored"]
    assert report["steps"]["sampling"]["result"]["identical"] is True
    assert report["steps"]["hybrid_mixed_float16"]["result"]["precision"] == "mixed_float16"
    assert report["steps"]["train_throughput"]["result"]["ratio"] > 0
