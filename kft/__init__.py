"""kft: fine-tune pretrained Keras backbones from one command.

From Python (kft/api.py): `kft.train(experiment, model_dir, overrides)`,
`kft.load(run_folder_or_saved_model).predict(inputs)` and
`kft.configure(experiment, overrides)`. `import kft` alone imports neither
TensorFlow nor Keras; they load on first use.
"""

__version__ = "0.1.0"
__all__ = ["Model", "UserError", "configure", "load", "train"]


def __getattr__(name):
    if name == "UserError":
        from kft.core.errors import UserError

        return UserError
    if name in __all__:
        from kft import api

        return getattr(api, name)
    raise AttributeError(f"module 'kft' has no attribute {name!r}")
