"""What a run says about how far it has come (Keras's bar covers the steps
inside an epoch on a terminal; this is the line after each epoch)."""


def duration(seconds):
    """Seconds as people read them: 42 s, 3.5 min, 1.2 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def epoch_line(done, total, seconds, phase_left=None, later=0, phase=""):
    """The line after epoch `done` of `total`, which took `seconds`: its
    time and, from it, about how long training has left. With
    `phase_left` (epochs left in `phase`) and `later` (epochs of the
    phases after it, which may cost differently: a cached head against the
    whole backbone) the estimate covers `phase` alone and the line counts
    the later epochs."""
    line = f"epoch {done}/{total}: {duration(seconds)}"
    if phase_left is None:
        phase_left = total - done
    if not later:
        if phase_left <= 0:
            return line
        return line + (
            f"; about {duration(phase_left * seconds)} of training left"
        )
    if phase_left:
        line += (
            f"; about {duration(phase_left * seconds)} left in phase "
            f"{phase}, then"
        )
    else:
        line += ";"
    return line + f" {later} more epoch(s) in later phases"
