"""Runnable examples of the library (python -m examples.quick_tour)."""

from trainers.quiet_start import quiet_tensorflow_start

quiet_tensorflow_start()
