"""Speed measurements behind `kft-benchmark`, one function per mode.

`data`: is the input pipeline fast enough? It times the training split's
`tf.data` pipeline alone, on its first (cold: reading, decoding or
tokenizing, filling the cache) and a later (warm: from the cache) pass,
next to the train step of the built model on the same batches, so input
never starves the model when the pipeline is several times faster.

`compare`: kft against what a user would otherwise write, on the same
model, data, batch size and optimizer (AdamW), in one invocation: each case
runs in its own process (kft/peers/), warm-up steps are excluded, and each
figure is the median of several repeats. Suites:

    text_fixed   training steps on [batch, length] token batches, for each
                 length: kft vs plain keras-hub fit vs PyTorch+transformers
    text_epoch   whole epochs of the experiment's training texts from raw
                 text (tokenizing included): kft's length-grouped batches vs
                 keras-hub padded to kft's sequence length vs PyTorch with
                 dynamic padding and length grouping
    images       image-backbone training steps (random weights): kft vs
                 plain keras.applications fit; and a frozen backbone with a
                 Dense head: kft recomputing the backbone every step (the
                 cached-features path is not implemented yet)
    utilization  a float32 matmul peak measured in the same run; every row
                 gets its achieved model FLOP/s and share of that peak
"""

import copy
import dataclasses
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

from kft import assets, builder, peers, run
from kft.data import token_lengths
from kft.errors import UserError
from kft.peers import measure
from kft.peers.kft_peer import compile_last_phase


def _count(batch):
    """Examples in a batch of (inputs, labels)."""
    return int(np.shape(batch[1])[0])


def time_pipeline(dataset, limit=None):
    """Examples per second over `dataset` (its first `limit` batches)."""
    if limit is not None:
        dataset = dataset.take(limit)
    started = time.perf_counter()
    examples = sum(_count(batch) for batch in dataset)
    return examples / (time.perf_counter() - started), examples


def text_shapes(dataset, epochs=1):
    """The distinct (batch, length) shapes of text batches over epochs."""
    shapes = set()
    for _ in range(epochs):
        for inputs, _ in dataset:
            shapes.add(tuple(inputs["token_ids"].shape))
    return shapes


def time_train_steps(model, batches):
    """Examples per second of `model.train_on_batch` over `batches`.

    A first pass over the same batches traces and compiles every shape, so
    the timed second pass measures steady-state steps.
    """
    for inputs, labels in batches:
        model.train_on_batch(inputs, labels)
    started = time.perf_counter()
    for inputs, labels in batches:
        model.train_on_batch(inputs, labels)
    examples = sum(_count(batch) for batch in batches)
    return examples / (time.perf_counter() - started)


def data(config, pipeline_batches=50, train_batches=5):
    """Pipeline and train-step throughput of `config`'s training data.

    Returns a dict of examples/s: `cold` (the first full epoch),
    `warm` (up to `pipeline_batches` batches from the cache), `train` (the
    train step on `train_batches` of those batches) and `ratio` (warm over
    train), plus for text the distinct batch shapes of one epoch in each
    shape mode.
    """
    run.set_seed(config.seed)
    run.check_choices(config)
    built, splits = run.prepare(config)
    dataset = run.batches(built, splits.train, config, True).dataset(0, 1)
    cold, examples = time_pipeline(dataset)
    warm, _ = time_pipeline(dataset, pipeline_batches)
    compile_last_phase(built, config, len(splits.labels))
    batches = list(dataset.take(train_batches))
    train = time_train_steps(built.model, batches)
    result = {
        "examples": examples,
        "batch_size": config.data.batch_size,
        "cold": cold,
        "warm": warm,
        "train": train,
        "ratio": warm / train,
    }
    if built.modality == "text":
        result["shapes"] = _shapes_by_mode(built, splits.train, config)
    return result


def _shapes_by_mode(built, split, config):
    """Distinct batch shapes over 3 epochs with dynamic and fixed shapes."""
    counts = {}
    chosen = config.data.text_shapes
    for mode in ("dynamic", "fixed"):
        config.data.text_shapes = mode
        dataset = run.batches(built, split, config, True).dataset(0, 3)
        counts[mode] = len(text_shapes(dataset))
    config.data.text_shapes = chosen
    return counts


def format_data(name, result):
    """The lines `kft-benchmark data` prints."""
    lines = [
        f"{name}: {result['examples']} training examples, batch "
        f"{result['batch_size']}",
        f"  pipeline, cold (first epoch)  {result['cold']:10.1f} examples/s",
        f"  pipeline, warm (cached)       {result['warm']:10.1f} examples/s",
        f"  train step                    {result['train']:10.1f} examples/s",
        f"  warm pipeline / train step    {result['ratio']:10.1f}x "
        f"(cold / train {result['cold'] / result['train']:.1f}x)",
    ]
    if "shapes" in result:
        shapes = result["shapes"]
        lines.append(
            f"  text batch shapes over 3 epochs: {shapes['dynamic']} dynamic, "
            f"{shapes['fixed']} fixed"
        )
    return "\n".join(lines)


# === compare ===

SUITES = ("text_fixed", "text_epoch", "images", "utilization")
PEERS = ("kft", "keras", "torch")


@dataclasses.dataclass
class Settings:
    """What `compare` measures and how; `TINY` is a smoke-test size."""

    suites: tuple = SUITES
    peers: tuple = PEERS
    repeats: int = 3
    steps: int = 5
    warmup: int = 3
    batch_size: int = 32
    lengths: tuple = (64, 128)
    image_backbone: str = "ResNet50"
    image_size: int = 224
    # The Hugging Face folder the PyTorch peer loads; "" is the backbone.
    torch_model: str = ""
    # Each case in its own process (peak memory per peer); False runs them
    # here, without memory figures.
    isolate: bool = True
    # Threads of every framework in every case (0: their defaults, all
    # cores); needs `isolate`.
    threads: int = 0
    matmul_size: int = 2048
    # Batches of distinct examples in the step suites' data.
    distinct_batches: int = 4


TINY = dict(
    repeats=2,
    steps=2,
    warmup=1,
    batch_size=4,
    lengths=(16, 32),
    image_backbone="MobileNetV3Small",
    image_size=32,
    matmul_size=256,
    distinct_batches=2,
)

LABELS = {
    ("text_fixed", "kft"): "kft",
    ("text_fixed", "keras"): "keras-hub TextClassifier.fit",
    ("text_fixed", "torch"): "PyTorch + transformers",
    ("text_epoch", "kft"): "kft, length-grouped batches",
    ("text_epoch", "keras"): "keras-hub, every row padded",
    ("text_epoch", "torch"): "PyTorch, dynamic padding, grouped",
    ("images", "kft"): "kft",
    ("images", "keras"): "keras.applications fit",
    ("utilization", "matmul"): "float32 matmul peak",
}
FROZEN_LABELS = ("kft, backbone recomputed each step", "kft, cached features")


def _check_bench_extra(settings):
    text = {"text_fixed", "text_epoch"} & set(settings.suites)
    if not (text and "torch" in settings.peers):
        return
    import importlib.util

    for module in ("torch", "transformers"):
        if importlib.util.find_spec(module) is None:
            raise UserError(
                "the PyTorch peer needs `pip install -e .[bench]` (torch, "
                f"transformers; {module} is missing), or leave it out with "
                "--peers=kft,keras"
            )


def _check_assets(*paths):
    """A UserError naming kft-fetch for a path inside a missing asset."""
    for name in assets.ASSETS:
        folder = str(assets.cache_dir() / name)
        if any(str(path).startswith(folder) for path in paths):
            assets.path(name)
    for path in paths:
        if path and os.path.isabs(path) and not os.path.exists(path):
            raise UserError(f"{path} does not exist")


def _write_examples(path, values, label_ids, num_classes):
    with open(path, "w") as file:
        json.dump(
            {
                "values": list(values),
                "label_ids": [int(i) for i in label_ids],
                "num_classes": int(num_classes),
            },
            file,
        )
    return str(path)


def long_texts(texts, words, count):
    """`count` texts of at least `words` words, each consecutive texts
    joined (so every row fills any length up to `words` tokens)."""
    out = []
    start = 0
    while len(out) < count:
        joined = []
        while len(" ".join(joined).split()) < words:
            joined.append(texts[start % len(texts)])
            start += 1
        out.append(" ".join(joined))
    return out


def _encoder_dims(backbone):
    config = backbone.get_config()
    try:
        return (
            config["num_layers"],
            config["hidden_dim"],
            config["intermediate_dim"],
        )
    except KeyError:
        return None


def _spec(settings, suite, case, peer, **fields):
    return {
        "suite": suite,
        "case": case,
        "peer": peer,
        "batch_size": settings.batch_size,
        "warmup": settings.warmup,
        "steps": settings.steps,
        "repeats": settings.repeats,
        "threads": settings.threads,
        **fields,
    }


def _text_cases(config, settings, work, log):
    config = copy.deepcopy(config)
    config.data.batch_size = settings.batch_size
    config.plan = "full"  # every peer trains the whole model
    torch_model = settings.torch_model or config.backbone
    _check_assets(config.backbone, config.data.train, torch_model)
    run.check_choices(config)
    built, splits = run.prepare(config)  # picks the sequence length
    dims = _encoder_dims(built.backbone)
    classes = len(splits.labels)
    maximum = getattr(built.backbone, "max_sequence_length", None) or 512
    shared = dict(seed=config.seed, num_classes=classes)
    model_of = {"torch": torch_model}
    cases = []
    if "text_fixed" in settings.suites:
        texts = long_texts(
            splits.train.values,
            max(settings.lengths),
            settings.batch_size * settings.distinct_batches,
        )
        labels = [
            splits.train.label_ids[i % len(splits.train)]
            for i in range(len(texts))
        ]
        path = _write_examples(
            pathlib.Path(work) / "fixed.json", texts, labels, classes
        )
        for length in settings.lengths:
            if length > maximum:
                raise UserError(
                    f"--lengths: {length} is longer than the backbone's "
                    f"maximum sequence length {maximum}"
                )
            case_config = copy.deepcopy(config)
            case_config.data.sequence_length = length
            flops = dims and measure.transformer_train_flops(*dims, length)
            for peer in settings.peers:
                cases.append(
                    _spec(
                        settings,
                        "text_fixed",
                        f"length {length}",
                        peer,
                        length=length,
                        data=path,
                        model=model_of.get(peer, config.backbone),
                        config=_config_json(case_config),
                        flops_per_sample=flops,
                        **shared,
                    )
                )
    if "text_epoch" in settings.suites:
        length = config.data.sequence_length
        train = splits.train
        path = _write_examples(
            pathlib.Path(work) / "epoch.json",
            train.values,
            train.label_ids,
            classes,
        )
        flops = None
        if dims:
            # Useful FLOPs: each text at its own token count, no padding.
            tokens = np.minimum(
                token_lengths(built.preprocessor, train.values),
                length,
            )
            flops = float(
                np.mean(
                    [
                        measure.transformer_train_flops(*dims, int(n))
                        for n in tokens
                    ]
                )
            )
        for peer in settings.peers:
            cases.append(
                _spec(
                    settings,
                    "text_epoch",
                    f"{len(train)} texts, length <= {length}",
                    peer,
                    length=length,
                    data=path,
                    model=model_of.get(peer, config.backbone),
                    config=_config_json(config),
                    flops_per_sample=flops,
                    **shared,
                )
            )
    log(
        f"text: {config.backbone}, {classes} classes, batch "
        f"{settings.batch_size}; epoch suite sequence length "
        f"{config.data.sequence_length}"
    )
    return cases


def _config_json(config):
    from kft import config as config_lib

    return config_lib.to_json(config)


def _write_images(folder, count, size, classes=3, seed=0):
    """`count` random-noise PNGs of `size` px in `classes` class folders;
    returns (paths, label ids) in a fixed order."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for index in range(count):
        label = index % classes
        target = pathlib.Path(folder) / f"class_{label}"
        target.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        path = target / f"{index:04d}.png"
        path.write_bytes(tf.io.encode_png(pixels).numpy())
        paths.append(str(path))
        labels.append(label)
    return paths, labels


def _image_cases(config, settings, work):
    from kft import freeze
    from kft.peers import kft_peer

    classes = 3
    folder = pathlib.Path(work) / "images"
    paths, labels = _write_images(
        folder,
        settings.batch_size * settings.distinct_batches,
        settings.image_size,
        classes,
        config.seed,
    )
    path = _write_examples(
        pathlib.Path(work) / "images.json", paths, labels, classes
    )
    config = copy.deepcopy(config)
    config.backbone = settings.image_backbone
    config.weights = "none"
    config.data.image_size = settings.image_size
    config.data.batch_size = settings.batch_size
    config.data.augment = ""
    config.data.mixup = config.data.cutmix = 0.0
    name = f"{settings.image_backbone} {settings.image_size}px"
    built = builder.build(config, classes)
    cases = []
    for plan, case in (("full", name), ("linear_probe", f"{name}, frozen")):
        config.plan = plan
        phase = freeze.plan_from_config(config)[-1]
        freeze.apply_phase(
            built, phase, built.family.block_pattern, config.train_batchnorm
        )
        total, trainable = kft_peer.layer_flops(built.model)
        fields = dict(
            data=path,
            config=_config_json(config),
            flops_per_sample=total + 2 * trainable,
            seed=config.seed,
        )
        cases.append(_spec(settings, "images", case, "kft", **fields))
        if plan == "full" and "keras" in settings.peers:
            keras_fields = dict(
                folder=str(folder),
                backbone=settings.image_backbone,
                image_size=settings.image_size,
                num_classes=classes,
            )
            cases.append(
                _spec(
                    settings,
                    "images",
                    case,
                    "keras",
                    **fields,
                    **keras_fields,
                )
            )
    return cases


def _child_env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    root = str(pathlib.Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, env.get("PYTHONPATH", "")) if p
    )
    return env


def _run_case(spec, settings, work, index):
    """Runs one case (in a child process unless settings.isolate is off)."""
    if not settings.isolate:
        return peers.run_case(spec) | {"peak_rss_mb": None}
    spec_path = pathlib.Path(work) / f"case_{index}.json"
    out_path = pathlib.Path(work) / f"result_{index}.json"
    spec_path.write_text(json.dumps(spec))
    child = subprocess.run(
        [sys.executable, "-m", "kft.peers", str(spec_path), str(out_path)],
        capture_output=True,
        text=True,
        env=_child_env(),
    )
    if child.returncode != 0 or not out_path.exists():
        lines = child.stderr.strip().splitlines() or ["no output"]
        sys.stderr.write("\n".join(lines[-25:]) + "\n")
        return {"error": lines[-1], "peak_rss_mb": None}
    return json.loads(out_path.read_text())


def _machine():
    versions = {}
    for package in (
        "tensorflow",
        "keras",
        "keras-hub",
        "torch",
        "transformers",
    ):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "versions": versions,
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "load_average_start": os.getloadavg()[0],
    }


def compare(config, settings, log=print):
    """Runs the suites of `settings`; returns the report (JSON-able).

    Args:
        config: the experiment's config (after --config overrides): kft's
            settings, and for text its backbone folder and training data.
        settings: a `Settings`.
        log: progress lines go here.
    """
    unknown = set(settings.suites) - set(SUITES)
    if unknown:
        raise UserError(
            f"unknown suite '{sorted(unknown)[0]}'; valid: {', '.join(SUITES)}"
        )
    unknown = set(settings.peers) - set(PEERS)
    if unknown:
        raise UserError(
            f"unknown peer '{sorted(unknown)[0]}'; valid: {', '.join(PEERS)}"
        )
    if "kft" not in settings.peers:
        raise UserError("--peers must include kft (ratios are kft's)")
    if settings.warmup < 1 or settings.steps < 1 or settings.repeats < 1:
        raise UserError("--warmup, --steps and --repeats must be at least 1")
    if settings.threads and not settings.isolate:
        raise UserError("--threads needs --isolate (a process per case)")
    _check_bench_extra(settings)
    report = {
        "settings": dataclasses.asdict(settings),
        "machine": _machine(),
        "rows": [],
    }
    with tempfile.TemporaryDirectory(prefix="kft-benchmark-") as work:
        cases = []
        if {"text_fixed", "text_epoch"} & set(settings.suites):
            cases += _text_cases(config, settings, work, log)
        if "images" in settings.suites:
            cases += _image_cases(config, settings, work)
        if "utilization" in settings.suites:
            cases.append(
                _spec(
                    settings,
                    "utilization",
                    f"{settings.matmul_size}x{settings.matmul_size}",
                    "matmul",
                    matmul_size=settings.matmul_size,
                    matmul_repeats=5,
                    torch="torch" in settings.peers,
                )
            )
        for index, spec in enumerate(cases):
            started = time.perf_counter()
            result = _run_case(spec, settings, work, index)
            row = _row(spec, result)
            report["rows"].append(row)
            log(
                f"{row['suite']} | {row['case']} | {row['label']}: "
                f"{_describe(row)} ({time.perf_counter() - started:.0f} s)"
            )
            if spec["suite"] == "images" and spec["case"].endswith("frozen"):
                report["rows"].append(
                    dict(
                        row,
                        peer="kft_cached",
                        label=FROZEN_LABELS[1],
                        rates=[],
                        median=None,
                        peak_rss_mb=None,
                        error="not implemented",
                    )
                )
    report["machine"]["load_average_end"] = os.getloadavg()[0]
    _add_ratios(report)
    report["targets"] = targets(report["rows"])
    return report


def _row(spec, result):
    label = LABELS.get((spec["suite"], spec["peer"]), spec["peer"])
    if spec["suite"] == "images" and spec["case"].endswith("frozen"):
        label = FROZEN_LABELS[0]
    rates = result.get("rates", [])
    row = {
        "suite": spec["suite"],
        "case": spec["case"],
        "peer": spec["peer"],
        "label": label,
        "rates": rates,
        "median": measure.median(rates),
        "peak_rss_mb": result.get("peak_rss_mb"),
        "flops_per_sample": spec.get("flops_per_sample"),
    }
    for key in ("error", "gflops", "warmup_seconds", "batch_shapes"):
        if key in result:
            row[key] = result[key]
    return row


def _describe(row):
    if row.get("error"):
        return f"failed: {row['error']}"
    if "gflops" in row:
        return ", ".join(f"{k} {v:.1f}" for k, v in row["gflops"].items())
    return f"{row['median']:.2f} samples/s"


def _add_ratios(report):
    """kft's median over each row's, per case; FLOP/s and share of peak."""
    rows = report["rows"]
    peak = None
    for row in rows:
        if "gflops" in row:
            peak = max(row["gflops"].values())
    report["peak_gflops"] = peak
    kft = {
        (r["suite"], r["case"]): r["median"]
        for r in rows
        if r["peer"] == "kft" and r["median"]
    }
    for row in rows:
        ours = kft.get((row["suite"], row["case"]))
        if row["median"] and ours:
            row["kft_ratio"] = ours / row["median"]
        if row["median"] and row.get("flops_per_sample"):
            row["gflops_achieved"] = (
                row["median"] * row["flops_per_sample"] / 1e9
            )
            if peak:
                row["utilization"] = row["gflops_achieved"] / peak


def _find(rows, suite, case, peer):
    for row in rows:
        if (row["suite"], row["case"], row["peer"]) == (suite, case, peer):
            return row
    return None


def targets(rows):
    """The issue's targets against this run: value, target and met (None
    when a side is missing or not implemented)."""
    found = []

    def ratio(what, top, bottom, key, minimum=None, maximum=None):
        value = None
        if top and bottom and top.get(key) and bottom.get(key):
            value = top[key] / bottom[key]
        met = None
        if value is not None:
            met = value >= minimum if minimum is not None else value <= maximum
        goal = f">= {minimum}x" if minimum is not None else f"<= {maximum}x"
        found.append({"what": what, "value": value, "target": goal, "met": met})

    cases = []
    for row in rows:
        if (row["suite"], row["case"]) not in cases:
            cases.append((row["suite"], row["case"]))
    for suite, case in cases:
        kft = _find(rows, suite, case, "kft")
        torch = _find(rows, suite, case, "torch")
        keras = _find(rows, suite, case, "keras")
        where = f"{suite} {case}"
        if suite == "text_fixed":
            ratio(f"{where}: kft / PyTorch", kft, torch, "median", 1.0)
            ratio(f"{where}: kft / keras-hub", kft, keras, "median", 1.3)
        if suite == "text_epoch":
            ratio(f"{where}: kft / PyTorch", kft, torch, "median", 1.1)
        if suite.startswith("text"):
            ratio(
                f"{where}: kft peak memory / PyTorch's",
                kft,
                torch,
                "peak_rss_mb",
                maximum=1.0,
            )
        if suite == "images" and case.endswith("frozen"):
            cached = _find(rows, suite, case, "kft_cached")
            ratio(f"{where}: cached / recomputed", cached, kft, "median", 10)
        elif suite == "images":
            ratio(f"{where}: kft / keras", kft, keras, "median", 1.0)
    return found


def _cell(value, form, suffix=""):
    return "-" if value is None else format(value, form) + suffix


def format_compare(report):
    """The table `kft-benchmark compare` prints."""
    header = (
        f"{'suite':<12}{'case':<30}{'peer':<36}{'samples/s':>10}"
        f"{'spread':>8}{'peak MiB':>10}{'kft/this':>10}{'GFLOP/s':>9}"
        f"{'of peak':>9}"
    )
    lines = [header, "-" * len(header)]
    for row in report["rows"]:
        if "gflops" in row:
            continue
        rates = row["rates"]
        spread = None
        if len(rates) > 1 and row["median"]:
            spread = 100 * (max(rates) - min(rates)) / row["median"]
        ratio = row.get("kft_ratio")
        share = row.get("utilization")
        cells = f"{row['suite']:<12}{row['case'][:29]:<30}{row['label']:<36}"
        if row.get("error"):
            lines.append(cells + row["error"])
            continue
        share = share and 100 * share
        lines.append(
            cells
            + f"{_cell(row['median'], '.2f'):>10}"
            + f"{_cell(spread, '.0f', '%'):>8}"
            + f"{_cell(row['peak_rss_mb'], '.0f'):>10}"
            + f"{_cell(ratio, '.2f', 'x'):>10}"
            + f"{_cell(row.get('gflops_achieved'), '.1f'):>9}"
            + f"{_cell(share, '.0f', '%'):>9}"
        )
    machine = report["machine"]
    settings = report["settings"]
    lines.append("")
    if report.get("peak_gflops"):
        matmul = next(r for r in report["rows"] if "gflops" in r)
        shown = ", ".join(f"{k} {v:.1f}" for k, v in matmul["gflops"].items())
        lines.append(
            f"matmul peak {report['peak_gflops']:.1f} GFLOP/s "
            f"(float32 {matmul['case']}: {shown})"
        )
    suites = {row["suite"] for row in report["rows"]}
    repeats = settings["repeats"]
    if suites & {"text_fixed", "images"}:
        lines.append(
            f"steps: median of {repeats} repeats of {settings['steps']} "
            f"steps after {settings['warmup']} warm-up steps"
        )
    if "text_epoch" in suites:
        lines.append(
            f"text_epoch: median of {repeats} epochs after 1 warm-up epoch, "
            "each from raw text; GFLOP/s counts real tokens, not padding"
        )
    lines.append(
        f"batch {settings['batch_size']}; threads "
        f"{settings['threads'] or 'default'}; {machine['cpus']} CPUs, "
        f"load average {machine['load_average_start']:.1f} at start, "
        f"{machine['load_average_end']:.1f} at end; peak MiB: each case's "
        "own process, framework included"
    )
    lines.append("targets:")
    for target in report["targets"]:
        value = target["value"]
        state = {True: "met", False: "NOT met", None: "n/a"}[target["met"]]
        shown = "-" if value is None else f"{value:.2f}x"
        lines.append(
            f"  {target['what']}: {shown} (target {target['target']}) {state}"
        )
    return "\n".join(lines)
