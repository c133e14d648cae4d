"""Training runs: RunConfig (validated settings) and train() (resumable, checkpointed, logged, exported)."""

from gd_bottleneck.errors import TrainingDiverged, TrainingInterrupted
from gd_bottleneck.training.run import train
from gd_bottleneck.training.run_config import RunConfig

__all__ = ["RunConfig", "TrainingDiverged", "TrainingInterrupted", "train"]
