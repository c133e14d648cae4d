"""Studies: each folder holds one study's plan, flags, runner, code and results (see its README)."""

from gd_bottleneck.cli import quiet_tensorflow_start

quiet_tensorflow_start()
