"""kft: fine-tune pretrained Keras backbones from one command."""

__version__ = "0.1.0"
