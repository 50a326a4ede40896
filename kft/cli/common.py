"""What every kft command shares: quiet start-up, config flags, help,
exit codes.

`--config.KEY=VALUE` arguments are taken out of the command line (after
`--flagfile` expansion) before absl parses the rest, then applied to the
experiment's config with type checks; see `kft.config.override`.

`--help` (or -h, -?) prints the command's own module docstring and its
flags and exits 0; `--helpfull` adds every other flag (absl's). absl alone
would print the docstring of `__main__`, which for an installed console
script is pip's wrapper, and exit 1.
"""

import functools
import os
import shlex
import sys
import tempfile

from absl import app, flags
from absl import logging as absl_logging

from kft.core.errors import Diverged, ExportError, Interrupted, UserError

# TensorFlow's C++ start-up chatter (CUDA probing on CPU machines) hides the
# lines users need; users can still set these themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FLAGS = flags.FLAGS
_PREFIX = "--config."


def expand_path(text):
    """A local path with a leading `~` expanded (bash leaves it as it is
    after `--flag=`); remote URLs and empty values as they are."""
    if not text or "://" in text:
        return text
    return os.path.expanduser(text)


# Flags defined through define_path belong to the module calling it (its
# --help lists them), not to this one.
flags.disclaim_key_flags()


class _PathParser(flags.ArgumentParser):
    """absl's string flag, with `expand_path` applied."""

    syntactic_help = "a path"

    def parse(self, argument):
        return expand_path(argument)

    def flag_type(self):
        return "string"


def define_path(name, default, description):
    """A string flag naming a file or folder: `~` expands."""
    return flags.DEFINE(
        _PathParser(),
        name,
        default,
        description,
        serializer=flags.ArgumentSerializer(),
    )


def split_config_args(argv):
    """Returns (argv without config overrides, [(key, value text)])."""
    rest, overrides = [], []
    args = iter(argv)
    for arg in args:
        if arg.startswith(_PREFIX):
            body = arg[len(_PREFIX) :]
            if "=" in body:
                key, text = body.split("=", 1)
            else:
                key, text = body, next(args, "")
            overrides.append((key, text))
        else:
            rest.append(arg)
    return rest, overrides


class _Parsed:
    overrides = []


HELP_ARGS = ("--help", "-help", "--helpshort", "-helpshort", "-h", "-?")
FULL_HELP_ARGS = ("--helpfull", "-helpfull")
# Where every command's help points for the values it accepts.
LISTS_HINT = (
    "Valid values: kft-train --list=experiments|backbones|plans|keys (keys: "
    "every --config.KEY with its default and what it does); kft-train "
    "--experiment=NAME --print_config [--config.KEY=VALUE ...] prints a "
    "resolved config."
)


def help_text(module_name, full=False):
    """The command's help: its module's docstring, then its flags (with
    `full`, every flag defined, absl's own included)."""
    doc = (sys.modules[module_name].__doc__ or "").strip("\n")
    own = FLAGS.get_key_flags_for_module(module_name)
    parts = [doc]
    if full:
        parts.append("flags:\n" + FLAGS.get_help())
    elif own:
        parts.append("flags:\n" + FLAGS.module_help(module_name))
    if not any(flag.name == "list" for flag in own):  # kft-train lists
        parts.append(LISTS_HINT)
    parts.append("--helpfull lists every flag, absl's own included.")
    return "\n\n".join(part.rstrip() for part in parts) + "\n"


def _help_asked(argv):
    """None, "short" or "full": the help asked for before any `--`."""
    args = argv[1 : argv.index("--")] if "--" in argv else argv[1:]
    if any(arg in FULL_HELP_ARGS for arg in args):
        return "full"
    if any(arg in HELP_ARGS for arg in args):
        return "short"
    return None


def parse_flags(argv, module_name=None):
    """absl `flags_parser`: answers --help, pulls out config overrides,
    parses the rest."""
    argv = FLAGS.read_flags_from_files(argv, force_gnu=False)
    asked = _help_asked(argv)
    if asked and module_name:
        sys.stdout.write(help_text(module_name, full=asked == "full"))
        sys.stdout.flush()
        sys.exit(0)
    rest, _Parsed.overrides = split_config_args(argv)
    try:
        return FLAGS(rest)
    except flags.Error as error:
        fail(str(error))


def import_tensorflow_quietly(modules=("keras_hub",)):
    """Imports TensorFlow and `modules` with their C++ start-up lines hidden.

    On machines without a GPU, TensorFlow's CUDA probing prints several
    lines to stderr before any setting can silence them; they would bury
    the one line a user error prints. They are replayed if the import fails.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import importlib

            import tensorflow as tf

            for module in modules:
                importlib.import_module(module)
            tf.config.list_physical_devices()
            # absl apps log INFO; TensorFlow's checkpoint saver logs a line
            # per save there.
            absl_logging.set_verbosity(absl_logging.WARNING)
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def config_overrides():
    return list(_Parsed.overrides)


def require(*holders):
    """One line, exit 2, for a required flag left out. Checked in `main`:
    absl's mark_flags_as_required would hold every command's parse in a
    process that defines another command's flags too."""
    for holder in holders:
        if holder.value is None or holder.value == "":
            fail(f"--{holder.name} is required")


def fail(message):
    """Prints one line and exits with status 2 (a user error)."""
    name = os.path.basename(sys.argv[0]) or "kft"
    print(f"{name}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def interrupted_line(name, resumable):
    """What Ctrl-C leaves on stderr: kft-train (`resumable`) resumes from
    its last checkpoint; the other commands keep none, and start over."""
    if resumable:
        return (
            f"{name}: interrupted; the same command resumes from the last "
            "checkpoint"
        )
    return f"{name}: interrupted"


def run_main(main, resumable=False):
    """Runs an absl main, turning kft.errors into one line and a status."""

    def guarded(argv):
        name = os.path.basename(sys.argv[0]) or "kft"
        try:
            main(argv)
        except UserError as error:
            fail(str(error))
        except (ExportError, Diverged) as error:
            print(f"{name}: {error}", file=sys.stderr, flush=True)
            sys.exit(1)
        except BrokenPipeError:
            # `kft-train --list=keys | head`: the reader has gone.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        except KeyboardInterrupt:
            print(interrupted_line(name, resumable), file=sys.stderr)
            sys.exit(130)
        except Interrupted as error:
            print(
                f"{name}: stopped by {error}, checkpoint written at step "
                f"{error.step}; to resume, run the same command: "
                f"{shlex.join(sys.argv)}",
                file=sys.stderr,
                flush=True,
            )
            sys.exit(128 + error.signum)

    parser = functools.partial(parse_flags, module_name=main.__module__)
    app.run(guarded, flags_parser=parser)
