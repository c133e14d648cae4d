"""Command-line entry points (absl apps). The library itself never reads flags."""

from gd_bottleneck.cli import quiet_tensorflow_start

quiet_tensorflow_start()
