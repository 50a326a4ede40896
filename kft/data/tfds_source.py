"""`tfds:NAME[/CONFIG]:SPLIT` specs to values and labels.

The split may be sliced as TFDS allows (`train[:80%]`, `train[80%:]`).
`data.tfds_data_dir` points at datasets prepared beforehand, for machines
without internet; TFDS then reads them from their files, without the
dataset's code. Feature names are picked as for files (kft.data.columns).
Only the needed features are read, and images stay encoded
(`SkipDecoding`): the pipeline decodes them with `kft.data.decode_image`.
The split is read into memory (as encoded bytes for images): the held-out
splits, the label vocabulary and the bad-record check need every example.
"""

import contextlib

import numpy as np
from absl import logging as absl_logging

from kft.core.errors import UserError
from kft.data.columns import holds_images, pick_columns


def parse_spec(spec):
    """Returns (name, split) of `tfds:NAME[/CONFIG]:SPLIT`."""
    # The split may hold colons itself: tfds:mnist:train[:80%].
    parts = spec.split(":", 2)
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise UserError(f"bad TFDS spec '{spec}'; use tfds:NAME[/CONFIG]:SPLIT")
    return parts[1], parts[2]


@contextlib.contextmanager
def quiet_info_logs():
    """Hides TFDS's INFO lines ("Load dataset info from ...") on stderr,
    where they would bury the one line of a user error."""
    previous = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.WARNING)
    try:
        yield
    finally:
        absl_logging.set_verbosity(previous)


def _dataset(spec, config):
    """Returns (builder, tf.data dataset of the chosen features, Columns)."""
    import tensorflow_datasets as tfds

    name, split = parse_spec(spec)
    with quiet_info_logs():
        return _open(tfds, spec, name, split, config)


def _open(tfds, spec, name, split, config):
    """Opens the split of `name`, already prepared or downloaded now."""
    try:
        builder = tfds.builder(name, data_dir=config.tfds_data_dir or None)
        builder.download_and_prepare()
        features = builder.info.features
        available = list(features.keys())
        images = holds_images(available, config)
        columns = pick_columns(available, config, spec, images=images)
        wanted = [columns.image or columns.text, columns.pair, columns.label]
        decoders = {columns.image: tfds.decode.SkipDecoding()}
        decoding = tfds.decode.PartialDecoding(
            {key: True for key in wanted if key},
            decoders=decoders if columns.image else None,
        )
        dataset = builder.as_dataset(split=split, decoders=decoding)
    except UserError:
        raise
    except Exception as error:  # tfds raises many kinds; all are the user's
        first = str(error).splitlines()[0][:300] if str(error) else ""
        hint = f"looked in {config.tfds_data_dir}"
        if not config.tfds_data_dir:
            hint = "offline, give a prepared copy: --config.data.tfds_data_dir"
        raise UserError(
            f"cannot load {spec}: {type(error).__name__}: {first} ({hint})"
        ) from None
    return builder, dataset, columns


def _label_name(feature):
    """Maps a label value to its name: ClassLabel names, else the value."""
    names = getattr(feature, "names", None)
    if names:
        return lambda value: names[int(value)]
    return lambda value: (
        value.decode("utf-8") if isinstance(value, bytes) else str(value)
    )


def _examples(dataset):
    """Yields the dataset's examples as dicts of numpy values."""
    import tensorflow_datasets as tfds

    for batch in tfds.as_numpy(dataset.batch(512)):
        keys = list(batch)
        for row in range(len(batch[keys[0]])):
            yield {key: batch[key][row] for key in keys}


def read_tfds(spec, config, bad):
    """Reads a TFDS split, skipping empty or undecodable texts.

    Returns:
        (values, pairs or None, labels, `Columns`): values are encoded
        image bytes or texts.
    """
    builder, dataset, columns = _dataset(spec, config)
    label_name = _label_name(builder.info.features[columns.label])
    values, pairs, labels = [], [], []
    for index, example in enumerate(_examples(dataset)):
        label = example[columns.label]
        if isinstance(label, np.integer) and label < 0:
            raise UserError(
                f"{spec} has unlabelled examples (label -1, as GLUE test "
                "splits do); use a labelled split"
            )
        if columns.image:
            value, pair = example[columns.image], None
        else:
            where = f"{spec} example {index}"
            value, pair = _texts(example, columns, where, bad)
            if value is None:
                continue
        values.append(value)
        pairs.append(pair)
        labels.append(label_name(label))
    return values, pairs if columns.pair else None, labels, columns


def _texts(example, columns, where, bad):
    """Returns (text, pair or None), or (None, None) for a bad record."""
    text = _text(example, columns.text, where, bad)
    if text is None or not columns.pair:
        return text, None
    pair = _text(example, columns.pair, where, bad)
    return (text, pair) if pair is not None else (None, None)


def _text(example, key, where, bad):
    """The feature as text, or None (a bad record) if empty or not UTF-8."""
    try:
        text = example[key].decode("utf-8")
    except UnicodeDecodeError:
        bad.add(where, f"{key} is not UTF-8")
        return None
    if not text.strip():
        bad.add(where, f"empty {key}")
        return None
    return text
