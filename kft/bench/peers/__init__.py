"""The training paths `kft-benchmark compare` times, one case per call.

A case is a JSON-able dict (its "spec"): suite, peer, batch size, lengths,
warm-up, steps and repeats, and the paths of its data and model. Peers:

    kft    kft's own path: `builder.build` with the experiment's config,
           `kft.optim` optimizer compiled by the classification task's
           `compile`, fed by `labelled.batches` (kft/bench/peers/kft_peer.py)
    keras  plain keras-hub `TextClassifier` or keras.applications model
           and `model.fit` at default settings (kft/bench/peers/keras_peer.py)
    torch  PyTorch + transformers `from_pretrained` on the same folder, a
           plain training loop (kft/bench/peers/torch_peer.py)
    kft_cached  kft's cached-features path for a frozen backbone: whole
           epochs of the head on features computed once (kft_peer.py)
    trainer  (kft-benchmark accuracy) Hugging Face `Trainer` at its
           defaults, fine-tuning and predicting (trainer_peer.py)

kft/bench/peers/cases.py builds the specs and kft/bench/peers/table.py reports
them.

`run_case` runs a case here; `python -m kft.bench.peers SPEC OUT` runs it in a
fresh process, so each peer's peak memory is its own, and writes the result
with that process's peak resident memory to OUT. This module and
`kft.bench.peers.measure` import no framework: the PyTorch peer's process never
loads TensorFlow.
"""

import importlib
import json
import subprocess
import sys

from kft.bench.peers import measure

# (suite, peer) -> (module, function); each returns {"rates": [samples/s
# per repeat], ...}.
RUNNERS = {
    ("text_fixed", "kft"): ("kft.bench.peers.kft_peer", "text_fixed"),
    ("text_fixed", "keras"): ("kft.bench.peers.keras_peer", "text_fixed"),
    ("text_fixed", "torch"): ("kft.bench.peers.torch_peer", "text_fixed"),
    ("text_epoch", "kft"): ("kft.bench.peers.kft_peer", "text_epoch"),
    ("text_epoch", "keras"): ("kft.bench.peers.keras_peer", "text_epoch"),
    ("text_epoch", "torch"): ("kft.bench.peers.torch_peer", "text_epoch"),
    ("images", "kft"): ("kft.bench.peers.kft_peer", "images"),
    ("images", "keras"): ("kft.bench.peers.keras_peer", "images"),
    ("images", "kft_cached"): ("kft.bench.peers.kft_peer", "images_cached"),
    ("utilization", "matmul"): ("kft.bench.peers.measure", "matmul_peak"),
    # kft-benchmark accuracy (kft/bench/accuracy.py): {"predicted": [...]}.
    ("accuracy", "trainer"): ("kft.bench.peers.trainer_peer", "classify"),
}


def run_case(spec):
    """Runs one case in this process; returns its result dict."""
    module, name = RUNNERS[(spec["suite"], spec["peer"])]
    return getattr(importlib.import_module(module), name)(spec)


def run_isolated(spec, spec_path, out_path):
    """Runs one case with `python -m kft.bench.peers` in a fresh process;
    returns (its result dict, or None when the process failed, and the
    last lines of its stderr)."""
    spec_path.write_text(json.dumps(spec))
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "kft.bench.peers",
            str(spec_path),
            str(out_path),
        ],
        capture_output=True,
        text=True,
        env=measure.child_env(),
    )
    lines = child.stderr.strip().splitlines() or ["no output"]
    if child.returncode != 0 or not out_path.exists():
        return None, lines[-25:]
    return json.loads(out_path.read_text()), lines[-25:]
