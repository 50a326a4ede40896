"""The table of supported backbones and how each is loaded and fed.

`TABLE` lists every keras.applications model kft knows, with the family's
own input normalization and the regex that names its blocks (for freeze
plans that count blocks). keras-hub backbones (BERT, DistilBERT, RoBERTa,
DeBERTaV3, ALBERT, ELECTRA, ResNet, EfficientNet) come from a preset name or
a local preset / Hugging Face folder and bring their own preprocessor; their
families are in `HUB_FAMILIES`. The tests parametrize over both tables.
"""

import dataclasses
import os
import pathlib

import keras

from kft.core import assets, files, run_folder
from kft.core.errors import UserError, close_matches
from kft.model import kernels


@dataclasses.dataclass(frozen=True)
class Family:
    """How a family of backbones is fed and where its blocks are.

    Args:
        modality: "image" or "text".
        normalization: for keras.applications images, the family's
            `preprocess_input` as one of "caffe" (BGR, ImageNet mean),
            "tf" (to [-1, 1]), "torch" (to [0, 1], ImageNet mean and std)
            or "none" (the model normalizes inside).
        block_pattern: a regex whose first group names the block a layer
            belongs to; layers between blocks join the block before them.
        image_size: the default square input size.
    """

    modality: str
    normalization: str = "none"
    block_pattern: str = ""
    image_size: int = 224


RESNET = Family("image", "caffe", r"^(conv\d_block\d+)_")
RESNET_V2 = Family("image", "tf", r"^(conv\d_block\d+)_")
EFFICIENTNET = Family("image", "none", r"^(block\d[a-z])_")
MOBILENET_V2 = Family("image", "tf", r"^(block_\d+)_")
MOBILENET_V3 = Family("image", "none", r"^(expanded_conv(?:_\d+)?)_")
CONVNEXT = Family("image", "none", r"_(stage_\d+_block_\d+)_")
TRANSFORMER = Family(
    "text",
    block_pattern=(
        r"^((?:transformer|disentangled_attention_encoder)_layer_\d+"
        r"|group_\d+_inner_layer_\d+)$"
    ),
)


@dataclasses.dataclass(frozen=True)
class Entry:
    """A keras.applications backbone: its constructor name and family."""

    name: str
    family: Family
    image_size: int = 224

    def build(self, image_size, weights):
        """Returns the model without its top, on `image_size` inputs."""
        constructor = getattr(keras.applications, self.name)
        kwargs = dict(
            include_top=False,
            weights=weights,
            input_shape=(image_size, image_size, 3),
        )
        return constructor(**kwargs)


def _entries():
    entries = []
    for depth in ("50", "101", "152"):
        entries.append(Entry(f"ResNet{depth}", RESNET))
        entries.append(Entry(f"ResNet{depth}V2", RESNET_V2))
    sizes = [224, 240, 260, 300, 380, 456, 528, 600]
    for index, size in enumerate(sizes):
        entries.append(Entry(f"EfficientNetB{index}", EFFICIENTNET, size))
    v2_sizes = {"B0": 224, "B1": 240, "B2": 260, "B3": 300}
    v2_sizes |= {"S": 384, "M": 480, "L": 480}
    for suffix, size in v2_sizes.items():
        entries.append(Entry(f"EfficientNetV2{suffix}", EFFICIENTNET, size))
    entries.append(Entry("MobileNetV2", MOBILENET_V2))
    entries.append(Entry("MobileNetV3Small", MOBILENET_V3))
    entries.append(Entry("MobileNetV3Large", MOBILENET_V3))
    for size in ("Tiny", "Small", "Base", "Large", "XLarge"):
        entries.append(Entry(f"ConvNeXt{size}", CONVNEXT))
    return {entry.name: entry for entry in entries}


TABLE = _entries()

# keras-hub backbone classes kft fine-tunes, by class name.
HUB_FAMILIES = {
    "BertBackbone": TRANSFORMER,
    "DistilBertBackbone": TRANSFORMER,
    "RobertaBackbone": TRANSFORMER,
    "XLMRobertaBackbone": TRANSFORMER,
    "DebertaV3Backbone": TRANSFORMER,
    "AlbertBackbone": TRANSFORMER,
    "ElectraBackbone": TRANSFORMER,
    "ResNetBackbone": Family("image", block_pattern=r"^(stack\d+_block\d+)"),
    "EfficientNetBackbone": Family("image", block_pattern=r"^(block\d[a-z])"),
}


@dataclasses.dataclass(frozen=True)
class Source:
    """A resolved `--config.backbone`: where it comes from and its family.

    kind is "applications" (keras.applications) or "hub" (keras-hub preset
    name, local preset folder or local Hugging Face checkpoint folder).
    """

    kind: str
    name: str
    family: Family | None = None


def known_names():
    """(keras.applications names, keras-hub preset names): every backbone
    `--config.backbone` takes by name, both sorted."""
    return sorted(TABLE), sorted(_hub_preset_names())


def _hub_preset_names():
    import keras_hub

    return set(keras_hub.models.Backbone.presets)


def _looks_like_preset_folder(path):
    files = {"config.json", "metadata.json"}
    return any((path / name).is_file() for name in files)


def resolve(name):
    """Turns a `--config.backbone` value into a Source, or raises UserError."""
    if not name:
        raise UserError(
            "no backbone given; set --config.backbone to one of: "
            + ", ".join(TABLE)
            + ", a keras-hub preset or a local folder"
        )
    by_lower = {key.lower(): key for key in TABLE}
    if name.lower() in by_lower:
        entry = TABLE[by_lower[name.lower()]]
        return Source("applications", entry.name, entry.family)
    path = pathlib.Path(name).expanduser()
    if path.is_dir():
        if not _looks_like_preset_folder(path):
            raise UserError(
                f"backbone folder {name} holds neither a keras-hub preset "
                "(metadata.json) nor a Hugging Face checkpoint (config.json)"
            )
        return Source("hub", str(path))
    if path.is_file():
        raise UserError(
            f"backbone {name} is a file; name the architecture with "
            "--config.backbone and pass the file as --config.weights"
        )
    if name.startswith(("hf://", "kaggle://")) or name in _hub_preset_names():
        return Source("hub", name)
    if _looks_like_path(name):
        raise UserError(
            f"backbone folder {name} does not exist"
            + (assets.missing_hint(name) or "; check the path")
        )
    choices = list(TABLE) + sorted(_hub_preset_names())
    raise UserError(
        f"unknown backbone '{name}'; {close_matches(name, choices)} "
        "(or a local keras-hub preset / Hugging Face folder; kft-train "
        "--list=backbones lists every name)"
    )


def _looks_like_path(name):
    """A backbone value meant as a folder: it has a / or starts with . or ~
    (preset names and keras.applications names have none of these)."""
    return os.sep in name or "/" in name or name.startswith((".", "~"))


def load_hub_backbone(source):
    """Loads a keras-hub backbone; the family comes from its class.

    Its einsum projections run as 2-D matmuls (kft/model/kernels.py):
    this backbone's, not those of other models in the process.
    """
    import keras_hub

    try:
        backbone = keras_hub.models.Backbone.from_preset(source.name)
    except (OSError, ConnectionError, ValueError) as error:
        raise UserError(
            f"could not load keras-hub backbone '{source.name}': "
            f"{str(error).splitlines()[0][:300]} (offline? pass a local "
            "preset or Hugging Face folder)"
        ) from None
    family = HUB_FAMILIES.get(type(backbone).__name__)
    if family is None:
        raise UserError(
            f"keras-hub backbone {type(backbone).__name__} is not supported; "
            f"supported: {', '.join(sorted(HUB_FAMILIES))}"
        )
    kernels.fold(backbone)
    return backbone, family


def application_weights(weights):
    """Maps `--config.weights` to the `weights=` argument of an application."""
    if weights in ("", "none", "None"):
        return None
    if weights == "imagenet":
        return "imagenet"
    if files.isdir(weights):  # a finished kft run: the backbone it keeps
        kept = os.path.join(weights, run_folder.BACKBONE_FILE)
        if not files.exists(kept):
            raise UserError(
                f"--config.weights folder {weights} holds no kft run's "
                f"backbone ({run_folder.BACKBONE_FILE})"
            )
        return kept
    if not files.exists(weights):
        raise UserError(
            f"weights file not found: {weights} (use imagenet, none, a "
            ".weights.h5 file or a kft run folder)"
        )
    return weights
