"""Where a training step's time goes, op type by op type: executed ops and op time per step (TensorFlow profiler).

    python -m benchmarks.step_profile --side=ours         # our PixelCNN++ step, benchmarks.train_throughput --quick
    python -m benchmarks.step_profile --side=reference         # tfd.PixelCNN's step, same architecture
    python -m benchmarks.step_profile --side=hybrid            # the Figure 2 sweep's step: small() at 8x8, batch 32
    python -m benchmarks.step_profile --side=hybrid --image_size=32 --batch_size=16   # small() at CIFAR's size
    TF_NUM_INTRAOP_THREADS=1 taskset -c 0 python -m benchmarks.step_profile --side=ours --steps=20   # one core

Why: where op dispatch dominates (small models on a CPU), a step's wall time is a sum of many small ops, and which
ones matter is not what a FLOP count says. The profiler records every kernel TensorFlow executes; this groups them by
op type and prints, per step, how many ran and how long they took (their summed durations: with several threads
this can exceed the wall time, and work the ops leave idle, such as dispatch gaps, is not in it). The last line is
the same as JSON.

Counted: events named ``<node>:<OpType>`` (how the profiler names a kernel), except the function-call and
control-flow ops that only contain other ops (``PartitionedCall``, ``While``, ...), whose children are counted
themselves; the profiler's own bookkeeping events (``ExecutorState::Process``, ``ThreadpoolListener::...``) have no
such name and are left out.
"""

import argparse
import collections
import glob
import json
import os
import tempfile

import numpy as np

# Ops whose events enclose the events of the ops they run: counting them would count their children twice.
CONTAINERS = frozenset({"PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile", "If", "StatelessIf",
                        "Case", "StatelessCase"})


def op_type(event_name):
    """The op type of a profiler event named ``<node>:<OpType>``, or None for any other event."""
    node, colon, kind = event_name.rpartition(":")
    # Grappler's fused and oneDNN's kernels have internal op types with a leading underscore (_FusedConv2D).
    if not colon or not node or not kind or "::" in event_name or not kind.lstrip("_")[:1].isupper() or " " in kind:
        return None
    return kind


def op_events(space):
    """``[(op type, duration in ps)]`` of the executed kernels in an ``XSpace`` (the profiler's trace)."""
    events = []
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                kind = op_type(plane.event_metadata[event.metadata_id].name)
                if kind is not None and kind not in CONTAINERS:
                    events.append((kind, event.duration_ps))
    return events


def summarize(events, steps):
    """Rows ``{"op", "count", "ms"}`` per step (count may be fractional), longest first, and the totals."""
    counts, picoseconds = collections.Counter(), collections.Counter()
    for kind, duration in events:
        counts[kind] += 1
        picoseconds[kind] += duration
    rows = [{"op": kind, "count": counts[kind] / steps, "ms": picoseconds[kind] / 1e9 / steps}
            for kind in sorted(counts, key=lambda kind: -picoseconds[kind])]
    totals = {"ops_per_step": sum(counts.values()) / steps, "op_ms_per_step": sum(picoseconds.values()) / 1e9 / steps}
    return rows, totals


def profile(run_steps, steps):
    """Traces ``run_steps(steps)`` and returns the op events of the trace."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            run_steps(steps)
        finally:
            tf.profiler.experimental.stop()
        (path,) = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
        with open(path, "rb") as stream:
            return op_events(xplane_pb2.XSpace.FromString(stream.read()))


def step_runner(side, arch_name, image_size=8, batch_size=32):
    """``run_steps(n)``: ``n`` training steps of ``side`` (warmed up: traced and run twice); ``image_size`` and
    ``batch_size`` are the hybrid side's."""
    from benchmarks import train_throughput

    if side == "hybrid":
        from gd_bottleneck import HybridVAE
        from gd_bottleneck.config import PRESETS
        from gd_bottleneck.training.optimizer import FusedAdam

        model = HybridVAE(PRESETS["small"](image_size), bottleneck="gaussian_dropout", dropout_rate=0.15, seed=0)
        model.compile(optimizer=FusedAdam(1e-3))
        images = np.random.default_rng(0).integers(0, 256, (batch_size * 64, image_size, image_size, 3), np.uint8)
        model.fit(images[:2 * batch_size], batch_size=batch_size, epochs=1, verbose=0)
        return lambda n: model.fit(images[:batch_size * n], batch_size=batch_size, epochs=1, verbose=0)
    arch = {**train_throughput.ARCHITECTURES[arch_name], "weight_norm": False}  # the trainer's default
    step = (train_throughput.ours_step(arch, jit_compile=False)[0] if side == "ours"
            else train_throughput.reference_step(arch))
    step(), step()

    def run_steps(n):
        for _ in range(n):
            loss = step()
        float(loss)

    return run_steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", choices=["ours", "reference", "hybrid"], default="ours")
    parser.add_argument("--arch", choices=["quick", "paper"], default="quick",
                        help="benchmarks.train_throughput's architecture (ours and reference)")
    parser.add_argument("--image_size", type=int, default=8, help="the hybrid side's image size (a power of 2, >= 8)")
    parser.add_argument("--batch_size", type=int, default=32, help="the hybrid side's batch size (at least 1)")
    parser.add_argument("--steps", type=int, default=10, help="profiled steps (at least 1, at most 64)")
    parser.add_argument("--top", type=int, default=20, help="op types listed")
    args = parser.parse_args()
    if not 1 <= args.steps <= 64 or args.top < 1 or args.batch_size < 1:
        parser.error(f"--steps must be in [1, 64], --top and --batch_size at least 1 (got {args.steps}, {args.top} "
                     f"and {args.batch_size})")
    if args.image_size < 8 or args.image_size & (args.image_size - 1):
        parser.error(f"--image_size must be a power of 2, at least 8 (got {args.image_size})")
    runner = step_runner(args.side, args.arch, args.image_size, args.batch_size)
    rows, totals = summarize(profile(runner, args.steps), args.steps)
    print(f"{'op type':<32}{'ops/step':>10}{'ms/step':>10}{'share':>8}")
    for row in rows[:args.top]:
        print(f"{row['op']:<32}{row['count']:>10.1f}{row['ms']:>10.2f}{row['ms'] / totals['op_ms_per_step']:>8.1%}")
    label = f"all {len(rows)} op types"
    print(f"{label:<32}{totals['ops_per_step']:>10.1f}{totals['op_ms_per_step']:>10.2f}")
    hybrid_arch = f"small-{args.image_size}x{args.image_size}-b{args.batch_size}"
    print(json.dumps({"side": args.side, "arch": hybrid_arch if args.side == "hybrid" else args.arch,
                      "steps": args.steps, **{k: round(v, 3) for k, v in totals.items()},
                      "top": [{k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
                              for row in rows[:args.top]]}))


if __name__ == "__main__":
    main()
