"""Studies: each folder holds one study's plan, flags, runner, code and results (see its README)."""

from trainers.quiet_start import quiet_tensorflow_start

quiet_tensorflow_start()
