"""The monitored figure: what picks the best epoch and stops a phase early."""

import dataclasses

from kft.core.errors import UserError


@dataclasses.dataclass(frozen=True)
class Monitor:
    """`name` (config.monitor: a task metric, `val_` for its validation
    figure) and whether it improves downwards (losses and errors)."""

    name: str
    lower_is_better: bool

    @classmethod
    def of(cls, name, metrics, task):
        """The monitor `name` of the task named `task`, which logs
        `metrics`; a UserError for a figure it does not log."""
        if name.removeprefix("val_") not in metrics:
            raise UserError(
                f"--config.monitor={name} is not a {task} metric; valid: "
                + ", ".join(f"val_{m}" for m in metrics)
                + " (or without val_)"
            )
        return cls(name, name.endswith(("loss", "mae", "rmse")))

    def better(self, value, best):
        """Whether `value` improves on `best` (None: nothing yet)."""
        if best is None:
            return True
        return value < best if self.lower_is_better else value > best
