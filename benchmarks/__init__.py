"""Benchmarks: throughput of training and sampling, printed as JSON lines (results/benchmarks/)."""

from trainers.quiet_start import quiet_tensorflow_start

quiet_tensorflow_start()
