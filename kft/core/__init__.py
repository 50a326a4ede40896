"""Lowest layer: errors, files, config checks, checkpoints, strategies,
freezing, optimizers and the trainer (`model.fit`)."""
