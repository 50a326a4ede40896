"""`kft-benchmark` on tiny configs: `data` figures present and positive;
`compare` in its tiny mode, every suite and peer (the PyTorch peer only
where the bench extra is installed)."""

import dataclasses
import json
import subprocess
import sys

import pytest
from conftest import (
    VOCAB,
    make_texts,
    run_cli,
    tiny_image_config,
    write_csv,
)

from kft import config as config_lib
from kft.bench import benchmark
from kft.bench.peers import cases, measure, table
from kft.core import experiments
from kft.core.errors import UserError


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
    assert "valid: data, compare" in result.stderr


# === kft-benchmark compare, tiny ===


def _tiny_settings(**changes):
    settings = benchmark.Settings(**benchmark.TINY)
    return dataclasses.replace(settings, **changes)


def _text_config(backbone, tmp_path, count=40):
    config = config_lib.default_config()
    config.backbone = backbone
    config.data.train = write_csv(tmp_path / "t.csv", make_texts(count))
    return config


def _check_report(report, peers):
    rows = report["rows"]
    measured = [row for row in rows if "gflops" not in row]
    for row in measured:
        assert "error" not in row, row
        assert row["median"] > 0 and len(row["rates"]) == 2, row
        assert row["gflops_achieved"] > 0, row
        if report["peak_gflops"]:
            assert 0 < row["utilization"] < 1, row
        if row["peer"] == "kft":
            assert row["kft_ratio"] == pytest.approx(1.0)
    assert {row["peer"] for row in measured} >= set(peers)
    json.dumps(report)  # what --output writes
    text = table.format_compare(report)
    assert "samples/s" in text and "targets:" in text
    return text


def test_compare_tiny_in_process(tiny_bert, tmp_path):
    """Every suite with kft and the plain Keras peers (no PyTorch needed),
    in this process: rows, ratios, FLOP/s, targets, the table."""
    config = _text_config(tiny_bert, tmp_path)
    settings = _tiny_settings(peers=("kft", "keras"), isolate=False)
    report = benchmark.compare(config, settings, log=lambda line: None)
    text = _check_report(report, ("kft", "keras", "kft_cached"))
    suites = {row["suite"] for row in report["rows"]}
    assert suites == set(benchmark.SUITES)
    cases = {(r["suite"], r["case"]) for r in report["rows"]}
    assert ("text_fixed", "length 16") in cases
    assert ("text_fixed", "length 32") in cases
    assert report["peak_gflops"] > 0
    assert "cached features" in text and "computed once in" in text
    whats = [target["what"] for target in report["targets"]]
    assert any("kft / keras-hub" in what for what in whats)
    frozen = [t for t in report["targets"] if "cached" in t["what"]]
    assert frozen and frozen[0]["value"] > 0
    # Without the PyTorch peer, its targets have no value.
    assert all(
        t["met"] is None for t in report["targets"] if "PyTorch" in t["what"]
    )


def test_compare_kft_trains_at_the_precision_kft_train_would(
    tiny_bert, tmp_path
):
    """--config.precision reaches kft's case as it reaches kft-train, the
    row says which precision kft ran at, and the case leaves this
    process's policy as it found it."""
    import keras

    config = _text_config(tiny_bert, tmp_path)
    config.precision = "mixed_bfloat16"
    settings = _tiny_settings(
        peers=("kft", "keras"), suites=("text_fixed",), isolate=False
    )
    report = benchmark.compare(config, settings, log=lambda line: None)
    rows = {row["peer"]: row for row in report["rows"]}
    assert rows["kft"]["precision"] == "mixed_bfloat16"
    assert "mixed_bfloat16" in rows["kft"]["label"]
    assert "precision" not in rows["keras"]
    assert keras.mixed_precision.global_policy().name == "float32"


def _tiny_hf_bert(folder):
    """A tiny BERT as a Hugging Face folder, which keras-hub loads too."""
    import transformers

    config = transformers.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=32,
        num_labels=3,
    )
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer"})
    )
    return str(folder)


def test_compare_tiny_cli_with_pytorch(tmp_path):
    """kft-benchmark compare --tiny as a user runs it: each case in its own
    process (peak memory per peer), the PyTorch peer on a tiny BERT from a
    transformers config, the JSON written. Skipped without the bench extra
    (torch, transformers)."""
    pytest.importorskip("torch", reason="the bench extra is not installed")
    pytest.importorskip("transformers", reason="the bench extra is missing")
    model = _tiny_hf_bert(tmp_path / "tiny_hf")
    data = write_csv(tmp_path / "t.csv", make_texts(40))
    output = tmp_path / "compare.json"
    result = run_cli(
        "kft-benchmark",
        "compare",
        "--tiny",
        "--suite=text_fixed,text_epoch",
        "--lengths=16",
        "--threads=1",
        "--experiment=text_classifier",
        f"--config.backbone={model}",
        f"--config.data.train={data}",
        f"--output={output}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    _check_report(report, ("kft", "keras", "torch"))
    for row in report["rows"]:
        assert row["peak_rss_mb"] > 50, row
    torch_rows = [row for row in report["rows"] if row["peer"] == "torch"]
    assert len(torch_rows) == 2
    assert "PyTorch, dynamic padding, grouped" in result.stdout
    whats = {target["what"]: target for target in report["targets"]}
    memory = [t for w, t in whats.items() if "memory" in w]
    assert memory and all(t["value"] > 0 for t in memory)


def test_compare_needs_the_bench_extra(monkeypatch):
    """Without torch, the PyTorch peer is a one-line user error."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch" else real(name, *a),
    )
    settings = benchmark.Settings()
    with pytest.raises(UserError, match=r"pip install -e \.\[bench\]"):
        benchmark.compare(config_lib.default_config(), settings)
    # Leaving the peer out is fine: the next check is the missing asset.
    monkeypatch.setenv("KFT_CACHE", "/nonexistent/kft-cache")
    config = experiments.load("drug_reviews_minilm")
    settings = dataclasses.replace(settings, peers=("kft", "keras"))
    with pytest.raises(UserError, match="kft-fetch minilm"):
        benchmark.compare(config, settings)


def test_compare_rejects_bad_settings():
    config = config_lib.default_config()
    for changes, message in (
        ({"suites": ("speed",)}, "unknown suite 'speed'"),
        ({"peers": ("jax",)}, "unknown peer 'jax'"),
        ({"peers": ("keras",)}, "must include kft"),
        ({"warmup": 0}, "at least 1"),
        ({"threads": 1, "isolate": False}, "--threads needs --isolate"),
    ):
        settings = dataclasses.replace(benchmark.Settings(), **changes)
        with pytest.raises(UserError, match=message):
            benchmark.compare(config, settings)


def test_step_rates_exclude_warmup():
    ends = {1: 10.0, 2: 11.0, 3: 12.0, 4: 14.0, 5: 16.0}
    # Warm-up step 1 (whatever it took), then 2 repeats of 2 steps.
    assert measure.step_rates(ends, 1, 2, 2, 8) == [8.0, 4.0]
    with pytest.raises(ValueError, match="steps_per_execution"):
        measure.step_rates(ends, 1, 3, 2, 8)


def test_transformer_flops_and_long_texts():
    # MiniLM-L6-H384 at 64 tokens: 3 x 2 x 6 x 64 x (4h^2 + 2hf + 2Lh).
    flops = measure.transformer_train_flops(6, 384, 1536, 64)
    assert flops == 3 * 2 * 6 * 64 * (
        4 * 384**2 + 2 * 384 * 1536 + 2 * 64 * 384
    )
    texts = cases.long_texts(["a b", "c", "d e f"], 5, 4)
    assert len(texts) == 4 and all(len(t.split()) >= 5 for t in texts)


def test_compare_cli_missing_asset_is_one_line(tmp_path):
    result = run_cli(
        "kft-benchmark",
        "compare",
        "--peers=kft,keras",
        env={"KFT_CACHE": str(tmp_path / "empty")},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"kft-benchmark: error: asset 'minilm' is missing from "
        f"{tmp_path / 'empty'}; run: kft-fetch minilm"
    ]


def test_case_processes_import_this_kft():
    """Each case's child process finds the kft that started it first."""
    import os
    import pathlib

    root = measure.child_env()["PYTHONPATH"].split(os.pathsep)[0]
    assert (pathlib.Path(root) / "kft" / "__init__.py").is_file()


def test_targets_are_issue_26s():
    """kft >= 1.2x both peers at fixed shapes, >= 1.3x PyTorch on the real
    epoch and never slower than keras-hub there, memory <= 1.0x PyTorch's."""

    def row(suite, peer, median, memory=1000.0):
        return {
            "suite": suite,
            "case": "c",
            "peer": peer,
            "median": median,
            "peak_rss_mb": memory,
        }

    rows = [
        row("text_fixed", "kft", 11.9),
        row("text_fixed", "keras", 10.0),
        row("text_fixed", "torch", 9.0),
        row("text_epoch", "kft", 12.5),
        row("text_epoch", "keras", 13.0),
        row("text_epoch", "torch", 10.0),
    ]
    found = {t["what"]: (t["target"], t["met"]) for t in table.targets(rows)}
    assert found == {
        "text_fixed c: kft / PyTorch": (">= 1.2x", True),
        "text_fixed c: kft / keras-hub": (">= 1.2x", False),
        "text_fixed c: kft peak memory / PyTorch's": ("<= 1.0x", True),
        "text_epoch c: kft / PyTorch": (">= 1.3x", False),
        "text_epoch c: kft / keras-hub": (">= 1.0x", False),
        "text_epoch c: kft peak memory / PyTorch's": ("<= 1.0x", True),
    }
