"""Causal language-model pieces (kft/tasks/causal_lm/generation.py) on a tiny
GPT-2."""

import csv
import json

import numpy as np
import pytest

from kft import config as config_lib
from kft.core.errors import UserError
from kft.tasks.causal_lm import generation


def load(preset):
    import keras_hub

    return keras_hub.models.CausalLM.from_preset(preset)


def test_response_only_loss_mask_on_a_known_example(tiny_gpt2):
    tokenizer = load(tiny_gpt2).preprocessor.tokenizer
    example = generation.Example("ab:", "cd.")
    [(ids, weights)] = generation.encode([example], tokenizer)
    prompt = generation._ids(tokenizer, ["ab:"])[0]
    response = generation._ids(tokenizer, ["cd."])[0]
    end = tokenizer.end_token_id
    assert ids == [tokenizer.start_token_id, *prompt, *response, end]
    assert weights == [0.0] * (1 + len(prompt)) + [1.0] * (len(response) + 1)
    rows = generation.rows([(ids, weights)], 10, 0, packing=False)
    x, y, sample_weight = rows.inputs()
    targets = [int(t) for t, w in zip(y[0], sample_weight[0]) if w]
    assert targets == [*response, end]  # only the response is learned
    assert x["padding_mask"][0].sum() == len(ids)  # one row of 10 inputs


def test_packing_keeps_every_token_and_pads_only_the_last_row():
    encoded = [([1] * n, [1.0] * n) for n in (3, 7, 5, 9, 2)]
    rows = generation.rows(encoded, 7, pad_id=0, packing=True)
    assert rows.token_ids.shape == (4, 8)
    assert rows.present.sum() == 26
    assert rows.present[:-1].all() and not rows.present[-1].all()
    padded = generation.rows(encoded, 7, pad_id=0, packing=False)
    assert padded.token_ids.shape == (5, 8)
    assert padded.present.sum() == 3 + 7 + 5 + 8 + 2  # 9 is cut to 8


def corpus(count=64):
    rng = np.random.default_rng(0)
    return [
        generation.Example("", " ".join(rng.choice(["the cat", "a dog"], 3)))
        for _ in range(count)
    ]


def test_fine_tune_loss_falls_and_greedy_generation_repeats(tiny_gpt2):
    import keras

    keras.utils.set_random_seed(0)
    lm = load(tiny_gpt2)
    tokenizer = lm.preprocessor.tokenizer
    encoded = generation.encode(corpus(), tokenizer)
    rows = generation.rows(encoded, 16, tokenizer.pad_token_id)
    model = generation.training_model(lm)
    generation.compile_lm(model, keras.optimizers.Adam(1e-2))
    x, y, weight = rows.inputs()
    history = model.fit(
        x, y, sample_weight=weight, batch_size=8, epochs=4, verbose=0
    )
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0]
    assert generation.perplexity(losses[-1]) < generation.perplexity(losses[0])
    lm.compile(sampler=generation.make_sampler("greedy"))
    prompts = ["the", "a dog"]
    # Without stop tokens it runs to max_length.
    first = lm.generate(prompts, max_length=16, stop_token_ids=None)
    second = lm.generate(prompts, max_length=16, stop_token_ids=None)
    assert first == second and len(first) == 2
    assert first[0].startswith("the") and first[1].startswith("a dog")
    assert len(first[0]) > len("the")  # it generated something


def test_lora_trains_adapters_and_leaves_base_weights(tiny_gpt2):
    import keras

    lm = load(tiny_gpt2)
    before = {w.path: np.array(w) for w in lm.backbone.weights}
    total = sum(int(np.prod(w.shape)) for w in lm.backbone.weights)
    trainable = generation.enable_lora(lm.backbone, rank=2)
    assert 0 < trainable < total / 4
    tokenizer = lm.preprocessor.tokenizer
    rows = generation.rows(generation.encode(corpus(16), tokenizer), 16, 0)
    model = generation.training_model(lm)
    generation.compile_lm(model, keras.optimizers.Adam(1e-2))
    x, y, weight = rows.inputs()
    model.fit(x, y, sample_weight=weight, batch_size=8, epochs=1, verbose=0)
    changed = [
        w.path
        for w in lm.backbone.weights
        if w.path in before and not np.array_equal(before[w.path], w)
    ]
    # The base kernels and embeddings are untouched; keras-hub's LoRA
    # leaves the biases of the adapted query and value layers trainable.
    assert changed and all(
        path.endswith(("query/bias", "value/bias")) for path in changed
    )
    adapters = [w for w in lm.backbone.trainable_weights if "lora" in w.path]
    assert adapters and any(np.abs(np.array(w)).sum() > 0 for w in adapters)


def test_samplers_and_user_errors():
    assert type(generation.make_sampler("top_k", top_k=3)).__name__ == (
        "TopKSampler"
    )
    with pytest.raises(UserError, match="valid: greedy, top_k"):
        generation.make_sampler("beam")


def test_read_text_and_prompt_response_files(tmp_path):
    data = config_lib.default_config().data
    text = tmp_path / "book.txt"
    text.write_text("first document\nline two\n\n\nsecond one\n")
    examples, note = generation.read_examples(str(text), data, "p", "r")
    assert [e.response for e in examples] == [
        "first document\nline two",
        "second one",
    ]
    assert note is None and examples[0].prompt == ""
    lines = tmp_path / "chat.jsonl"
    rows = [
        {"p": "Q: hi", "r": "hello"},
        {"text": "a document"},
        {"p": "Q: x", "r": ""},
        {"q": "nothing"},
    ]
    lines.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    data.max_bad_fraction = 0.9
    examples, note = generation.read_examples(str(lines), data, "p", "r")
    assert [(e.prompt, e.response) for e in examples] == [
        ("Q: hi", "hello"),
        ("", "a document"),
    ]
    assert "3 bad records of 5" in note
    with pytest.raises(UserError, match=".txt or .jsonl"):
        generation.read_examples(str(tmp_path / "x.csv"), data, "p", "r")


def chat_rows(count, seed):
    rng = np.random.default_rng(seed)
    return [
        {"prompt": f"q: {w}", "response": f" a: {w} {w}."}
        for w in rng.choice(["cat", "dog", "sea", "sun"], count)
    ]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def lm_run(tiny_gpt2, tmp_path_factory):
    """One finished tiny causal LM run of kft-train, shared by the tests
    of the commands that read it: (run folder, its flags, the result)."""
    from conftest import train_cli

    folder = tmp_path_factory.mktemp("lm")
    data = write_jsonl(folder / "chat.jsonl", chat_rows(96, 0))
    test = write_jsonl(folder / "test.jsonl", chat_rows(16, 1))
    flags = [
        f"--config.backbone={tiny_gpt2}",
        f"--config.data.train={data}",
        f"--config.data.test={test}",
        "--config.data.sequence_length=24",
        "--config.lm.lora=off",
        "--config.epochs=4",
        "--config.lm.max_length=16",
        "--config.lm.samples=3",
        "--config.learning_rate=1e-2",
        "--config.data.batch_size=8",
    ]
    model_dir = folder / "run"
    result = train_cli(model_dir, *flags, experiment="causal_lm")
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, flags, result


def test_kft_train_causal_lm_end_to_end(lm_run):
    """kft-train --experiment=causal_lm on prompt/response JSONL:
    perplexity, sample generations, a `generate` export equal to Keras's
    greedy generations and the prompts kft-export checks again;
    kft-generate; a rerun finds it finished."""
    from conftest import assert_run_contract, run_cli, train_cli

    model_dir, flags, _ = lm_run
    assert_run_contract(model_dir)
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["task"] == "causal_lm"
    assert metrics["lora"] is None
    validation = metrics["validation"]
    assert validation["examples"] == 10
    assert np.isclose(validation["perplexity"], np.exp(validation["loss"]))
    assert metrics["test"]["examples"] == 16
    with open(model_dir / "history.csv") as file:
        losses = [float(row["loss"]) for row in csv.DictReader(file)]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert len(metrics["samples"]) == 3
    assert all(
        s["generated"].startswith(s["prompt"]) for s in metrics["samples"]
    )
    check = json.loads(
        (model_dir / "export" / "1" / "kft_export_check.json").read_text()
    )
    assert check["generations_equal"] == 3
    assert "generate" in check["signatures"]
    sample = model_dir / "checkpoints" / "export_sample.json"
    prompts = [s["prompt"] for s in metrics["samples"]]
    assert json.loads(sample.read_text()) == prompts
    generated = run_cli(
        "kft-generate", f"--model_dir={model_dir}", "--prompt=q: cat"
    )
    assert generated.returncode == 0, generated.stderr[-2000:]
    line = json.loads(generated.stdout.strip().splitlines()[-1])
    assert line["prompt"] == "q: cat" and line["generated"].startswith("q: cat")
    page = (model_dir / "report.html").read_text()
    assert "Sample generations" in page and "perplexity" in page
    # A length the backbone cannot reach (its maximum is 64) is one line.
    for length in ("500", "-1"):
        refused = run_cli(
            "kft-generate",
            f"--model_dir={model_dir}",
            "--prompt=q: cat",
            f"--max_length={length}",
        )
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert "--max_length" in refused.stderr.strip().splitlines()[-1]
    again = train_cli(model_dir, *flags, experiment="causal_lm")
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_a_max_length_over_the_backbones_is_capped(tiny_gpt2, tmp_path):
    """lm.max_length above the backbone's maximum (64 here) would train
    and then fail at the first generation: it is capped before training."""
    import kft
    from kft.tasks import registry

    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(24, 0))
    config = kft.configure(
        "causal_lm",
        {"backbone": tiny_gpt2, "data.train": str(data), "lm.max_length": 500},
    )
    registry.get("causal_lm").prepare(config)
    assert config.lm.max_length == 64


def test_kft_evaluate_causal_lm_run_gives_its_test_loss(lm_run):
    """kft-evaluate on a causal LM run: the loss and perplexity of its test
    split again; --saved_model, whose export answers no loss, is refused."""
    from conftest import assert_user_error, run_cli

    model_dir = lm_run[0]
    expected = json.loads((model_dir / "metrics.json").read_text())["test"]
    result = run_cli("kft-evaluate", f"--model_dir={model_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "perplexity" in result.stdout
    metrics = json.loads(
        (model_dir / "eval" / "test" / "metrics.json").read_text()
    )
    assert metrics["task"] == "causal_lm"
    figures = metrics["test"]
    assert figures["examples"] == expected["examples"] == 16
    for key in ("loss", "perplexity", "token_accuracy"):
        assert figures[key] == pytest.approx(expected[key], rel=1e-5)
    export = model_dir / "export" / "1"
    refused = run_cli(
        "kft-evaluate", f"--model_dir={model_dir}", f"--saved_model={export}"
    )
    assert_user_error(refused, "--saved_model", "causal_lm")


def test_a_mixed_bfloat16_causal_lm_run_scores_in_float32(tiny_gpt2, tmp_path):
    """A causal LM trained in mixed_bfloat16 (auto on a CPU with AMX) is
    scored in float32 after training, as kft-evaluate scores it."""
    from conftest import run_cli, train_cli

    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(32, 0))
    test = write_jsonl(tmp_path / "test.jsonl", chat_rows(8, 1))
    model_dir = tmp_path / "run"
    result = train_cli(
        model_dir,
        f"--config.backbone={tiny_gpt2}",
        f"--config.data.train={data}",
        f"--config.data.test={test}",
        "--config.data.sequence_length=24",
        "--config.lm.lora=off",
        "--config.epochs=1",
        "--config.lm.max_length=16",
        "--config.lm.samples=2",
        "--config.export=false",
        "--config.precision=mixed_bfloat16",
        experiment="causal_lm",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "scoring and exporting the best weights in float32" in result.stdout
    expected = json.loads((model_dir / "metrics.json").read_text())["test"]
    again = run_cli("kft-evaluate", f"--model_dir={model_dir}")
    assert again.returncode == 0, again.stderr[-3000:]
    metrics = json.loads(
        (model_dir / "eval" / "test" / "metrics.json").read_text()
    )
    assert metrics["test"]["loss"] == pytest.approx(expected["loss"], rel=1e-5)


def test_kft_export_and_kft_predict_on_a_causal_lm_run(lm_run, tmp_path):
    """kft-export writes the next checked version; kft-predict continues
    each prompt of a CSV with the export's `generate`, as Keras did."""
    from conftest import run_cli, write_csv

    model_dir = lm_run[0]
    base = model_dir / "export"
    result = run_cli(
        "kft-export", f"--model_dir={model_dir}", f"--export_dir={base}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(base / "2")
    check = json.loads((base / "2" / "kft_export_check.json").read_text())
    assert check["generations_equal"] == 3
    # The run's sample prompts, whose greedy generations Keras made.
    samples = json.loads((model_dir / "metrics.json").read_text())["samples"]
    prompts = [s["prompt"] for s in samples] + ["q"]
    source = write_csv(
        tmp_path / "prompts.csv", [{"prompt": p} for p in prompts]
    )
    result = run_cli(
        "kft-predict", f"--saved_model={base / '2'}", f"--input={source}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["input"] for line in lines] == prompts
    for prompt, line in zip(prompts, lines):
        assert line["generated"].startswith(prompt)
    assert [line["generated"] for line in lines[:-1]] == [
        s["generated"] for s in samples
    ]


def test_freeze_plans_keep_lora_adapters_only(tiny_gpt2):
    """A phase that unfreezes blocks of a LoRA backbone trains only those
    blocks' adapters (and adapted biases): not kernels, embeddings or
    norms, and nothing in the blocks it leaves frozen."""
    from kft.core import freeze
    from kft.model import builder
    from kft.tasks.causal_lm import task as lm_run

    lm = load(tiny_gpt2)
    generation.enable_lora(lm.backbone, rank=2)
    model = generation.training_model(lm)
    built = builder.Built(model, lm.backbone, lm_run.FAMILY)
    top = freeze.Phase("top", 1, ("head", "last:1"), 1e-3)
    freeze.apply_phase(built, top, generation.BLOCK_PATTERN)
    names = sorted(w.path for w in model.trainable_weights)
    assert names and all(n.startswith("transformer_layer_1/") for n in names)
    assert all(
        n.endswith(("lora_kernel_a", "lora_kernel_b", "/bias")) for n in names
    )
    everything = freeze.Phase("full", 1, ("head", "all"), 1e-3)
    freeze.apply_phase(built, everything, generation.BLOCK_PATTERN)
    assert len(model.trainable_weights) == 2 * len(names)


def test_deterministic_causal_lm_runs_are_bitwise_equal(tiny_gpt2, tmp_path):
    """--config.deterministic=true: two kft-train runs of the same causal
    LM config end with the same weights and history, byte for byte."""
    from conftest import assert_bitwise_equal_runs, train_cli

    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(24, 0))
    flags = [
        f"--config.backbone={tiny_gpt2}",
        f"--config.data.train={data}",
        "--config.data.sequence_length=24",
        "--config.lm.lora=off",
        "--config.epochs=1",
        "--config.lm.samples=1",
        "--config.lm.max_length=8",
        "--config.data.batch_size=8",
        "--config.export=false",
        "--config.deterministic=true",
    ]
    for name in ("first", "second"):
        result = train_cli(tmp_path / name, *flags, experiment="causal_lm")
        assert result.returncode == 0, result.stderr[-3000:]
    assert_bitwise_equal_runs(tmp_path / "first", tmp_path / "second")


def test_a_causal_lm_saved_under_mixed_precision_loads(tiny_gpt2, tmp_path):
    """A mixed_bfloat16 run saves its causal LM with that policy in the
    preset's config, which keras-hub (0.32) cannot read back ("Invalid
    dtype: mixed_bfloat16"); kft loads it under the policy in force."""
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        generation.load_causal_lm(tiny_gpt2).save_to_preset(
            str(tmp_path / "preset")
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    again = generation.load_causal_lm(str(tmp_path / "preset"))
    assert again.backbone.dtype_policy.name == "float32"
