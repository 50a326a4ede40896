"""Entry points: the only modules that define or read absl flags."""
