"""kft's package list; everything else is in setup.cfg.

The experiments live at the top of the checkout (experiments/, where users
read and copy them) and ship inside the package as `kft.experiments`, so
that `kft-train --experiment=NAME` finds them after `pip install kft`.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["kft", "kft.*"]), "kft.experiments"],
    package_dir={"kft.experiments": "experiments"},
    package_data={"kft.experiments": ["*.ipynb"]},
)
