"""What every export shares: the fresh-process check that a SavedModel
loads and answers as TF Serving would run it."""
