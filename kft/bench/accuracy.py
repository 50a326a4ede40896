"""`kft-benchmark accuracy`: what a user's run scores, over seeds, beside
the peers a user would pick instead, on the same splits.

For each seed, kft runs the experiment as a user does (`kft-train`, in its
own process, into a run folder under the work folder) and the peers train
on the same labelled examples and predict the same evaluation split:

    kft      the experiment's own recipe, `--config.seed=SEED`
    trainer  PyTorch + Hugging Face transformers `Trainer` at its defaults
             (AdamW 5e-5, linear decay, 3 epochs, batch 8, dynamic
             padding), on the experiment's backbone folder (the bench extra)
    tfidf    TF-IDF of word 1-2 grams + logistic regression, its C chosen
             by 5-fold cross-validation on the training examples
             (scikit-learn)

The peers train on every labelled example kft may use (kft's training and
validation splits), so kft's own model selection costs it data, never the
peers. Every figure is scored here by scikit-learn, peers and kft alike.

`on="test"` reads the experiment's test split, once per recipe: the
figure to report. `on="validation"` never touches it: each seed holds out
a stratified `holdout` share of the training data (seeded by the seed),
kft trains on the rest (with the experiment's own validation carving, if
any) and everyone is scored on the held-out share. Recipes are compared
this way (README, "Choosing a recipe").
"""

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from kft.bench import machine, peers, seed_data
from kft.bench.peers import measure, tfidf_peer
from kft.core.errors import UserError

PEERS = ("kft", "trainer", "tfidf")
ON = ("test", "validation")


@dataclasses.dataclass(frozen=True)
class Settings:
    seeds: int = 5
    first_seed: int = 0
    peers: tuple = PEERS
    on: str = "test"
    holdout: float = 0.2
    # Run folders are kept here; by default a temporary folder, removed.
    work_dir: str = ""
    # --config.KEY=VALUE for kft's runs.
    overrides: tuple = ()
    # The Trainer's defaults; --tiny makes them small.
    trainer_epochs: float = 3.0
    trainer_batch_size: int = 8
    trainer_max_length: int = 512


TINY = {"trainer_epochs": 1.0, "trainer_max_length": 32}


def check(config, settings):
    if config.task != "classification":
        raise UserError(
            "kft-benchmark accuracy measures classification experiments; "
            f"this one is task={config.task}"
        )
    unknown = set(settings.peers) - set(PEERS)
    if unknown or not settings.peers:
        raise UserError(
            f"--peers takes any of {', '.join(PEERS)}; "
            f"got {','.join(settings.peers)}"
        )
    if settings.on not in ON:
        raise UserError(f"--on takes {' or '.join(ON)}, not {settings.on}")
    if settings.seeds < 1:
        raise UserError("--seeds must be at least 1")
    if not 0 < settings.holdout < 1:
        raise UserError("--holdout must be in (0, 1)")
    from kft.model import backbones

    images = backbones.resolve(config.backbone).kind == "applications"
    if images and set(settings.peers) - {"kft"}:
        raise UserError("image experiments have no peers here; --peers=kft")
    if "trainer" in settings.peers and not _hugging_face(config.backbone):
        raise UserError(
            "the Trainer peer loads a local Hugging Face folder (with "
            f"config.json); {config.backbone} is not one"
        )
    if "trainer" in settings.peers:
        import importlib.util

        for module in ("torch", "transformers", "accelerate"):
            if importlib.util.find_spec(module) is None:
                raise UserError(
                    "the Trainer peer needs `pip install -e .[bench]` "
                    f"({module} is missing), or leave it out with "
                    "--peers=kft,tfidf"
                )


def _hugging_face(folder):
    """Whether `folder` holds a Hugging Face checkpoint (a config.json with
    a model_type; keras-hub presets have a config.json too)."""
    try:
        with open(os.path.join(folder, "config.json")) as file:
            return "model_type" in json.load(file)
    except (OSError, ValueError):
        return False


def score(label_ids, predicted):
    """Accuracy and macro-F1 (over the classes present, as kft's metrics)."""
    from sklearn import metrics

    return {
        "accuracy": float(metrics.accuracy_score(label_ids, predicted)),
        "macro_f1": float(
            metrics.f1_score(
                label_ids, predicted, average="macro", zero_division=0
            )
        ),
    }


def kft_command(experiment, seed, folder, overrides, settings):
    """kft-train for one seed: the benchmark's seed last (it wins over a
    --config.seed among the overrides), a run folder started over."""
    return [
        sys.executable,
        "-m",
        "kft.cli.train",
        f"--experiment={experiment}",
        f"--model_dir={folder / 'kft'}",
        "--overwrite",
        *settings.overrides,
        *overrides,
        f"--config.seed={seed}",
    ]


def _kft(experiment, seed, folder, overrides, settings):
    run_dir = folder / "kft"
    command = kft_command(experiment, seed, folder, overrides, settings)
    with open(folder / "kft.log", "w") as log:
        child = subprocess.run(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=measure.child_env(),
        )
    if child.returncode != 0:
        last = (folder / "kft.log").read_text().strip().splitlines()
        raise UserError(
            f"kft-train failed for seed {seed}: {(last or ['?'])[-1]} "
            f"(log: {folder / 'kft.log'})"
        )
    with open(run_dir / "predictions.jsonl") as file:
        return [json.loads(line) for line in file]


def _trainer(config, train, scored, labels, seed, folder, settings):
    spec = {
        "suite": "accuracy",
        "peer": "trainer",
        "model": config.backbone,
        "labels": labels,
        "train": train,
        "scored": scored,
        "seed": seed,
        "epochs": settings.trainer_epochs,
        "batch_size": settings.trainer_batch_size,
        "max_length": settings.trainer_max_length,
        "output_dir": str(folder / "trainer"),
    }
    result, lines = peers.run_isolated(
        spec, folder / "trainer.json", folder / "trainer_out.json"
    )
    if result is None:
        raise UserError(f"the Trainer peer failed for seed {seed}: {lines[-1]}")
    if "error" in result:
        raise UserError(f"the Trainer peer: {result['error']}")
    return [labels[i] for i in result["predicted"]]


def _fit_seconds(run_dir):
    with open(run_dir / "metrics.json") as file:
        timing = json.load(file)["timing"]
    # A seed ensemble's other members trained too (their own timings).
    phases = [
        phase
        for model in [timing, *timing.get("members", [])]
        for phase in model["phases"]
    ]
    return round(sum(phase["seconds"] for phase in phases), 1)


def _check_same(rows, scored, seed):
    """kft's run scored the examples the peers score (its predictions.jsonl
    names each by its text or image file)."""

    def key(row):
        return str(row.get("text", row.get("image", ""))), str(row["label"])

    seen = sorted(key(row) for row in rows)
    if seen != sorted((row["text"], str(row["label"])) for row in scored):
        raise UserError(
            f"seed {seed}: kft's run scored other examples than the peers "
            f"({len(rows)} against {len(scored)}); see its kft.log"
        )


def _one_seed(experiment, config, seed, folder, settings, log):
    folder.mkdir(parents=True, exist_ok=True)
    train, scored, labels, overrides = seed_data.examples(
        config, seed, settings.on, settings.holdout, folder, settings.peers
    )
    index = {str(name): i for i, name in enumerate(labels)}
    truth = [index[str(row["label"])] for row in scored]
    results = {}
    for peer in settings.peers:
        started = time.perf_counter()
        if peer == "kft":
            rows = _kft(experiment, seed, folder, overrides, settings)
            _check_same(rows, scored, seed)
            truth_here = [index[str(row["label"])] for row in rows]
            predicted = [row["predicted"] for row in rows]
        elif peer == "tfidf":
            truth_here, predicted = (
                truth,
                tfidf_peer.classify(train, scored, seed),
            )
        else:
            truth_here = truth
            predicted = _trainer(
                config, train, scored, labels, seed, folder, settings
            )
        seconds = time.perf_counter() - started
        ids = [index[str(name)] for name in predicted]
        results[peer] = score(truth_here, ids) | {"seconds": round(seconds, 1)}
        if peer == "kft":  # the wall time includes the export and its check
            results[peer]["fit_seconds"] = _fit_seconds(folder / "kft")
        figures = results[peer]
        log(
            f"seed {seed} {peer}: accuracy {figures['accuracy']:.4f}, "
            f"macro-F1 {figures['macro_f1']:.4f} ({seconds:.0f} s)"
        )
    return {"seed": seed, "examples": len(scored), "peers": results}


def summary(values):
    values = np.asarray(values, float)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {
        "mean": float(values.mean()),
        "std": std,
        "min": float(values.min()),
        "max": float(values.max()),
    }


def run(experiment, config, settings, log=print, after_seed=None):
    """Runs every seed of every peer; returns the report (JSON-able).
    `after_seed(report)` gets the report of the seeds finished so far after
    each one (the CLI writes it, so a stopped benchmark keeps them)."""
    check(config, settings)
    report = {
        "experiment": experiment,
        "settings": dataclasses.asdict(settings),
        "machine": machine.describe(),
        "seeds": [],
    }
    work = settings.work_dir or tempfile.mkdtemp(prefix="kft-accuracy-")
    try:
        for seed in range(
            settings.first_seed, settings.first_seed + settings.seeds
        ):
            folder = pathlib.Path(work).resolve() / f"seed_{seed}"
            report["seeds"].append(
                _one_seed(experiment, config, seed, folder, settings, log)
            )
            report["summary"] = _summarize(report["seeds"], settings.peers)
            if after_seed:
                after_seed(report)
    finally:
        if not settings.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    return report


def _summarize(seeds, peers):
    return {
        peer: {
            key: summary([s["peers"][peer][key] for s in seeds])
            for key in ("accuracy", "macro_f1", "seconds")
        }
        for peer in peers
    }


def format_report(report):
    settings = report["settings"]
    seeds = [s["seed"] for s in report["seeds"]]
    lines = [
        f"accuracy: {report['experiment']}, {settings['on']} split "
        f"({report['seeds'][0]['examples']} examples), {len(seeds)} seed(s) "
        f"{seeds[0]}-{seeds[-1]}; {machine.one_line(report['machine'])}",
        f"{'peer':8} {'accuracy mean ± std [min, max]':34} "
        f"{'macro-F1 mean ± std [min, max]':34} s/run",
    ]
    for peer, figures in report["summary"].items():
        cells = []
        for key in ("accuracy", "macro_f1"):
            f = figures[key]
            cells.append(
                f"{f['mean']:.4f} ± {f['std']:.4f} "
                f"[{f['min']:.4f}, {f['max']:.4f}]"
            )
        lines.append(
            f"{peer:8} {cells[0]:34} {cells[1]:34} "
            f"{figures['seconds']['mean']:.0f}"
        )
    kft = report["summary"].get("kft")
    if kft is not None:
        fit = [s["peers"]["kft"]["fit_seconds"] for s in report["seeds"]]
        lines.append(
            "kft's s/run is its whole kft-train run (start-up, data, test "
            "evaluation, report, and export where on); training alone "
            f"{np.mean(fit):.0f} s/run"
        )
    for peer, figures in report["summary"].items():
        if peer == "kft" or kft is None:
            continue
        seconds = max(figures["seconds"]["mean"], 1e-9)
        lines.append(
            f"kft - {peer}: accuracy "
            f"{kft['accuracy']['mean'] - figures['accuracy']['mean']:+.4f}, "
            f"macro-F1 "
            f"{kft['macro_f1']['mean'] - figures['macro_f1']['mean']:+.4f}, "
            f"time {kft['seconds']['mean'] / seconds:.2f}x"
        )
    return "\n".join(lines)
