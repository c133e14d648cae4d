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


def test_the_gpu_check_runs_every_program_on_the_cpu(tmp_path):
    """benchmarks.gpu_check's dry run: each program of the GPU machine's script once, at toy size, so it cannot rot."""
    from benchmarks import gpu_check

    real, dry = (gpu_check.steps(flag, str(tmp_path)) for flag in (False, True))
    program = {name: " ".join(command[1:3]) for name, command, _ in real}
    assert set(program.values()) == {" ".join(command[1:3]) for _, command, _ in dry}
    assert {name for name, _, _ in dry} <= set(program)
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--cpu_dry_run", f"--out={out}"],
                          cwd=REPO, env=environment(), capture_output=True, text=True, timeout=1200)
    report = json.loads(out.read_text())
    failed = {name: record for name, record in report["steps"].items() if not record["ok"]}
    assert done.returncode == 0 and not failed, (failed, done.stdout[-2000:])
    assert list(report["steps"]) == ["environment", "tests", "train_throughput_mixed_float16",
                                     "sampling_mixed_float16", "hybrid_mixed_float16", "paper_mirrored"]
    results = {name: record["result"] for name, record in report["steps"].items() if name.endswith("float16")}
    assert all(result["precision"] == "mixed_float16" for result in results.values())
    sampled, trained = results["sampling_mixed_float16"], results["train_throughput_mixed_float16"]
    # float16 sums in another order can round to the neighbouring level (as bfloat16: test_precision.py)
    assert sampled["max_subpixel_difference"] <= 1 and sampled["mismatched_subpixels"] <= 0.03 * 8 * 8 * 3
    assert trained["ratio_low"] <= trained["ratio"] <= trained["ratio_high"] and trained["pairs"] == 9


def test_loop_frames_places_every_node_in_the_loop_that_runs_it():
    from benchmarks import pixel_step_floor

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.disable_control_flow_v2()  # the lowered form the executor runs: Enter/Merge/Switch/Exit
        try:
            def inner(j, y):
                return j + 1, tf.sin(tf.sin(tf.sin(y)))

            def outer(i, x):
                _, x = tf.compat.v1.while_loop(lambda j, _: j < 3, inner, (tf.constant(0), x), name="inner")
                return i + 1, tf.cos(x)

            tf.compat.v1.while_loop(lambda i, _: i < 2, outer, (tf.constant(0), tf.zeros([4])), name="outer")
        finally:
            tf.compat.v1.enable_control_flow_v2()
    frames = pixel_step_floor.loop_frames(graph.as_graph_def())
    depths = {depth: ops for depth, ops in frames.values()}
    assert sorted(depths) == [0, 1, 2]
    assert depths[2]["Sin"] == 3 and "Sin" not in depths[1] and "Sin" not in depths[0]
    assert depths[1]["Cos"] == 1 and depths[2]["Enter"] == 2 and depths[1]["Enter"] == 2
    # an Exit runs once per entry of its loop, so it belongs to the frame around it (one per loop variable)
    assert "Exit" not in depths[2] and depths[1]["Exit"] == 2 and depths[0]["Exit"] == 2
    control, compute = pixel_step_floor.per_iteration(depths[2])
    assert compute == 3 + depths[2]["Less"] + depths[2]["AddV2"] and control > 0
