"""`kft-benchmark data` on tiny configs: every figure present and positive."""

import subprocess
import sys

from conftest import make_texts, tiny_image_config, write_csv

from kft import benchmark
from kft import config as config_lib


def _check(result):
    for key in ("cold", "warm", "train", "ratio"):
        assert result[key] > 0, key
    text = benchmark.format_data("tiny", result)
    assert "examples/s" in text and "train step" in text


def test_data_benchmark_text(tiny_bert, tmp_path):
    config = config_lib.default_config()
    config.backbone = tiny_bert
    config.data.train = write_csv(tmp_path / "t.csv", make_texts(40))
    config.data.batch_size = 8
    config.plan = "full"
    result = benchmark.data(config, pipeline_batches=3, train_batches=2)
    _check(result)
    assert result["examples"] == 28  # 70% of 40 after the held-out splits
    assert 1 <= result["shapes"]["fixed"] <= result["shapes"]["dynamic"]


def test_data_benchmark_images(image_folder):
    config = tiny_image_config(image_folder)
    config.data.augment = "flip,crop,rotate,zoom,color"
    config.data.mixup = 0.2
    result = benchmark.data(config, pipeline_batches=2, train_batches=2)
    _check(result)
    assert "shapes" not in result


def test_benchmark_cli_needs_a_mode():
    result = subprocess.run(
        [sys.executable, "-m", "kft.cli.benchmark", "--experiment=x", "speed"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "valid: data" in result.stderr
