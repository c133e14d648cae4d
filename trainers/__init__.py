"""Command-line entry points (absl apps). The library itself never reads flags."""

from trainers.quiet_start import quiet_tensorflow_start

quiet_tensorflow_start()
