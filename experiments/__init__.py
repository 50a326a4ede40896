"""kft's experiments, one file each, given by name to kft-train.

This folder ships inside the installed package as `kft.experiments`
(setup.py), so `--experiment=NAME` works after `pip install kft` too.
"""
