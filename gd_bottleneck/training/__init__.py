"""Training runs: RunConfig (validated settings) and train() (resumable, checkpointed, logged, exported)."""

from gd_bottleneck.training.run import TrainingDiverged, TrainingInterrupted, train
from gd_bottleneck.training.run_config import RunConfig

__all__ = ["RunConfig", "TrainingDiverged", "TrainingInterrupted", "train"]
