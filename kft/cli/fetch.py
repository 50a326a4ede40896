"""kft-fetch: download the offline assets (real weights and data) once.

    kft-fetch [NAME ...]      # default: every asset

Assets go to ~/.cache/kft (or $KFT_CACHE), checked against their sha256.
"""

from kft.cli import common


def main(argv):
    from kft.core import assets

    names = argv[1:] or [*assets.ASSETS, "digits"]
    if any(
        name in assets.WRITTEN_WITH_TENSORFLOW and not assets.is_present(name)
        for name in names
    ):
        # These are written as PNGs by TensorFlow, whose start-up lines
        # would bury what kft-fetch says.
        common.import_tensorflow_quietly(modules=())
    for name in names:
        assets.fetch(name)


def run():
    common.run_main(main)
