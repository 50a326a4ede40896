"""What a run says about how far it has come (Keras's bar covers the steps
inside an epoch on a terminal; this is the line after each epoch)."""


def duration(seconds):
    """Seconds as people read them: 42 s, 3.5 min, 1.2 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def epoch_line(done, total, seconds):
    """The line after epoch `done` of `total`, which took `seconds`: its
    time and, from it, about how long training has left."""
    line = f"epoch {done}/{total}: {duration(seconds)}"
    if done < total:
        line += f"; about {duration((total - done) * seconds)} of training left"
    return line
