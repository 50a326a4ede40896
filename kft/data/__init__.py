"""Data: specs to labelled splits (`sources`), splits to `tf.data` (`pipeline`).

The rest of kft imports the names below from `kft.data`.
"""

from kft.data import targets as targets
from kft.data.augment import parse as parse_augment  # noqa: F401
from kft.data.pipeline import RESIZE_MODES as RESIZE_MODES
from kft.data.pipeline import Epochs as Epochs
from kft.data.pipeline import decode_image as decode_image
from kft.data.pipeline import fixed_lengths as fixed_lengths
from kft.data.pipeline import image_batches as image_batches
from kft.data.pipeline import pick_sequence_length as pick_sequence_length
from kft.data.pipeline import text_batches as text_batches
from kft.data.pipeline import token_lengths as token_lengths
from kft.data.sources import Records as Records
from kft.data.sources import Split as Split
from kft.data.sources import Splits as Splits
from kft.data.sources import class_weights as class_weights
from kft.data.sources import label_ids as label_ids
from kft.data.sources import load_splits as load_splits
from kft.data.sources import read_checked as read_checked
from kft.data.sources import read_spec as read_spec
from kft.data.sources import split_seed as split_seed
from kft.data.sources import stratified_split as stratified_split
