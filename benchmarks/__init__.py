"""Benchmarks: throughput of training and sampling, printed as JSON lines (results/benchmarks/)."""

from gd_bottleneck.cli import quiet_tensorflow_start

quiet_tensorflow_start()
