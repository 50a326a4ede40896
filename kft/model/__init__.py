"""Models: backbones (the registry), the functional builder, heads,
preprocessing and the kernels they run."""
