"""Runnable examples of the library (python -m examples.quick_tour)."""

from gd_bottleneck.cli import quiet_tensorflow_start

quiet_tensorflow_start()
