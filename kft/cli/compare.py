"""kft-compare: finished runs side by side, and which one won.

    kft-compare DIR [DIR ...] [--output=compare.html]

Prints one line per run (plan, backbone, learning rates, best validation
figure, validation macro-F1 of the kept epoch, test accuracy and macro-F1,
time) and names the winner by validation macro-F1 when every run has
validation figures (by test macro-F1 otherwise; the verdict says which
split decided and why); writes the same table, with the runs' validation
curves overlaid, to --output (the plot also beside it as PNG).
"""

from kft.cli import common

_OUTPUT = common.define_path(
    "output",
    "compare.html",
    "Where to write the HTML comparison; its plot goes beside it as .png.",
)


def main(argv):
    folders = [common.expand_path(folder) for folder in argv[1:]]
    if not folders:
        common.fail("give one or more run folders: kft-compare DIR [DIR ...]")
    # Run folders are read through tf.io.gfile (kft.files).
    common.import_tensorflow_quietly(modules=())
    from kft.report import compare

    compare.compare(folders, _OUTPUT.value)


def run():
    common.run_main(main)
