"""How much of the cached sampler's pixel step is the executor's per-node cost, and how much is arithmetic.

    python -m benchmarks.pixel_step_floor        # small() at 32x32, 4 images (as benchmarks.sampling --quick)
    TF_NUM_INTRAOP_THREADS=1 taskset -c 0 python -m benchmarks.pixel_step_floor   # one core

Three measurements, printed as one JSON line:

1. the pixel step: a whole cached sampling run (``sampling.cached_samples``, traced and warm) divided by H * W,
   median of ``--runs`` runs;
2. the nodes the executor runs per pixel step, counted in the graph it runs (TensorFlow's dump of the partitioned
   graph, after Grappler and the lowering of loops and conditions into Enter/Merge/Switch/NextIteration/Exit), in a
   child process: each pixel loop's nodes per iteration averaged over the rows that run it, plus the row loop's
   nodes per iteration (the pixel loop's Enter and Exit nodes among them) spread over the row's pixels. Nodes of a
   condition's untaken branch count: the executor still schedules them (as dead tensors). TensorFlow's profiler
   cannot count them here: it records only the costlier kernels inside a loop;
3. what a node costs the executor, in toy ``tf.while_loop``s of ``--iterations`` iterations: a loop variable carried
   unchanged (its Merge, Switch, Identity and NextIteration per iteration) and a trivial compute node (``sin`` of
   one value: no arithmetic to speak of, and Grappler cannot merge a chain of them), each from the difference
   between a loop with ``--chain`` of them and a loop without.

The floor is control-flow nodes x the control node's cost + compute nodes x the trivial compute node's cost: a
sampler that runs the same graph cannot be faster on this TensorFlow and CPU; the rest of the pixel step is the
compute nodes' arithmetic. ``sized_estimate_ms`` prices every compute node as a sin of a [num_images, 64] tensor,
for comparison (at these sizes, handing a kernel to the thread pool is part of that price).
"""

import argparse
import collections
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CONTROL = frozenset({"Enter", "Exit", "Merge", "Switch", "NextIteration", "Identity", "LoopCond", "Const"})


def loop_frames(graph_def):
    """``{frame name: (depth, Counter of op types)}`` of a partitioned graph: which while loop each node runs in
    (depth 0: outside every loop), from Enter (into its ``frame_name``) and Exit (back to the parent) nodes."""
    nodes = {node.name: node for node in graph_def.node}
    frame, parent = {}, {"": ""}

    def inputs(node):  # NextIteration closes a loop's cycle: follow the entry side
        names = [name.lstrip("^").split(":")[0] for name in node.input]
        return [name for name in names if nodes[name].op != "NextIteration"]

    def frame_of(name):
        stack = [name]
        while stack:
            current = stack[-1]
            pending = [n for n in inputs(nodes[current])[:1] if n not in frame]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            node, first = nodes[current], inputs(nodes[current])[:1]
            outer = frame[first[0]] if first else ""
            if node.op == "Enter":
                inner = node.attr["frame_name"].s.decode()
                parent[inner] = outer
                frame[current] = inner
            else:
                frame[current] = parent.get(outer, "") if node.op == "Exit" else outer
        return frame[name]

    for name in nodes:
        frame_of(name)

    def depth(name):
        return 0 if not name else 1 + depth(parent.get(name, ""))

    counts = collections.defaultdict(collections.Counter)
    for name, where in frame.items():
        counts[where][nodes[name].op] += 1
    return {name: (depth(name), ops) for name, ops in counts.items()}


def per_iteration(ops):
    """``(control, compute)`` nodes one iteration of a loop runs (its Enter nodes run once per entry; its Exit nodes
    are in the frame around it)."""
    control = sum(n for op, n in ops.items() if op in CONTROL and op != "Enter")
    return control, sum(n for op, n in ops.items() if op not in CONTROL)


def count_nodes(image_size, num_images):
    """Runs the cached sampler in a child process that dumps its partitioned graph; returns ``(control, compute)``
    nodes per pixel step (see the module docstring)."""
    from google.protobuf import text_format
    from tensorflow.core.framework import graph_pb2

    with tempfile.TemporaryDirectory() as dump:
        environment = {**os.environ, "TF_DUMP_GRAPH_PREFIX": dump, "TF_DUMP_GRAPH_GROUPS": "main",
                       "TF_DUMP_GRAPH_NAME_FILTER": "*", "TF_CPP_MIN_LOG_LEVEL": "2"}
        subprocess.run([sys.executable, "-m", "benchmarks.pixel_step_floor", "--_sample_once",
                        f"--image_size={image_size}", f"--num_images={num_images}"], check=True, env=environment,
                       capture_output=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        (path,) = glob.glob(os.path.join(dump, "*cached_samples*after_partition_passes*"))
        with open(path) as stream:
            frames = loop_frames(text_format.Parse(stream.read(), graph_pb2.GraphDef()))
    rows = [ops for name, (depth, ops) in frames.items() if depth == 1 and not name.startswith("map")]
    pixels = [ops for depth, ops in frames.values() if depth == 2]  # one pixel loop per kind of row, equal shares
    if len(rows) != 1 or not pixels:
        raise RuntimeError(f"unexpected loop structure: {[(name, depth) for name, (depth, _) in frames.items()]}")
    row_control, row_compute = per_iteration(rows[0])
    row_control += statistics.mean(ops["Enter"] for ops in pixels)  # a pixel loop's entry, once per row
    control = statistics.mean(per_iteration(ops)[0] for ops in pixels) + row_control / image_size
    compute = statistics.mean(per_iteration(ops)[1] for ops in pixels) + row_compute / image_size
    return control, compute


def node_costs(chain, iterations, width, repeats=5):
    """Seconds per node and iteration, from toy loops (see the module docstring): ``{"control": a carried loop
    variable's node, "trivial": sin of one value, "sized": sin of a [width, 64] tensor, the size of the sampler's
    per-pixel values}``."""
    import tensorflow as tf

    def loop(carried, sines, shape):
        @tf.function
        def run(x):
            def body(i, x, *extra):
                for _ in range(sines):
                    x = tf.math.sin(x)
                return (i + 1, x, *extra)
            extra = [x + float(k) for k in range(carried)]
            _, x, *extra = tf.while_loop(lambda i, *_: i < iterations, body, (tf.constant(0), x, *extra))
            return tf.add_n([x, *extra])  # every carried value is used: Grappler keeps it in the loop
        return run, tf.zeros(shape)

    variants = {"base": loop(0, 0, [1, 1]), "control": loop(chain, 0, [1, 1]), "trivial": loop(0, chain, [1, 1]),
                "sized_base": loop(0, 0, [width, 64]), "sized": loop(0, chain, [width, 64])}
    for function, x in variants.values():
        function(x).numpy()
    differences = collections.defaultdict(list)
    for _ in range(repeats):
        seconds = {}
        for name, (function, x) in variants.items():
            start = time.perf_counter()
            function(x).numpy()
            seconds[name] = time.perf_counter() - start
        differences["control"].append((seconds["control"] - seconds["base"]) / (4 * chain * iterations))
        differences["trivial"].append((seconds["trivial"] - seconds["base"]) / (chain * iterations))
        differences["sized"].append((seconds["sized"] - seconds["sized_base"]) / (chain * iterations))
    return {name: statistics.median(values) for name, values in differences.items()}


def sampler(image_size, num_images):
    import tensorflow as tf

    from benchmarks.sampling import context_dependent_weights
    from gd_bottleneck import HybridVAE, sampling
    from gd_bottleneck.config import PRESETS

    model = context_dependent_weights(HybridVAE(PRESETS["small"](image_size), bottleneck="gaussian_dropout",
                                                dropout_rate=0.15, seed=0))
    seed = tf.constant([1, 2])
    z = sampling.prior_latents(model, seed, num_images)
    return lambda: sampling.cached_samples(model, z, seed).numpy()


def measure(image_size=32, num_images=4, runs=5, chain=64, iterations=2000):
    import tensorflow as tf

    run = sampler(image_size, num_images)
    run()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    control, compute = count_nodes(image_size, num_images)
    costs = node_costs(chain, iterations, num_images)
    step_ms = 1000 * statistics.median(seconds) / image_size ** 2
    floor_ms = 1000 * (control * costs["control"] + compute * costs["trivial"])
    return {"image_size": image_size, "num_images": num_images, "pixel_step_ms": round(step_ms, 4),
            "control_nodes_per_pixel_step": round(control, 1), "compute_nodes_per_pixel_step": round(compute, 1),
            **{f"{name}_node_us": round(1e6 * value, 3) for name, value in costs.items()},
            "control_flow_ms": round(1000 * control * costs["control"], 4),
            "executor_floor_ms": round(floor_ms, 4), "floor_share": round(floor_ms / step_ms, 3),
            "above_floor_ms": round(step_ms - floor_ms, 4),
            "sized_estimate_ms": round(1000 * (control * costs["control"] + compute * costs["sized"]), 4),
            "runs": runs,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--num_images", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5, help="timed sampling runs (median kept)")
    parser.add_argument("--chain", type=int, default=64, help="nodes added per toy loop iteration for the costs")
    parser.add_argument("--iterations", type=int, default=2000, help="toy loop iterations for the costs")
    parser.add_argument("--_sample_once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("image_size", "num_images", "runs", "chain", "iterations"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1. Received: {getattr(args, name)}")
    if args._sample_once:
        return sampler(args.image_size, args.num_images)()
    print(json.dumps(measure(args.image_size, args.num_images, args.runs, args.chain, args.iterations)), flush=True)


if __name__ == "__main__":
    main()
