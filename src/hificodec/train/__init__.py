"""Training: recipes, losses, discriminators, the trainer, checkpoints and export."""

from .recipe import Recipe, load_recipe
from .trainer import Trainer, TrainerState, TrainingDiverged

__all__ = ["Recipe", "Trainer", "TrainerState", "TrainingDiverged", "load_recipe"]
