"""kft-generate: text from a finished causal_lm run.

    kft-generate --model_dir=DIR --prompt="Q: what is kft?" [--prompt=...]
        [--max_length=128] [--sampler=greedy|top_k|top_p|random]

Loads the run's keras-hub causal LM with its trained weights (adapters
included) and prints one generation per prompt, as JSON lines with
`prompt` and `generated`. Sampling settings default to the run's
config (lm.sampler, lm.top_k, lm.top_p, lm.temperature, lm.max_length).
"""

import json

from absl import flags

from kft.cli import common

_MODEL_DIR = common.define_path("model_dir", None, "A causal_lm run folder.")
_PROMPT = flags.DEFINE_multi_string("prompt", None, "A prompt (repeatable).")
_MAX_LENGTH = flags.DEFINE_integer(
    "max_length", 0, "Tokens with the prompt; 0 takes the run's lm.max_length."
)
_SAMPLER = flags.DEFINE_string(
    "sampler", "", "greedy, top_k, top_p or random; '' takes the run's."
)


def main(argv):
    if len(argv) > 1:
        common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    common.require(_MODEL_DIR, _PROMPT)
    common.import_tensorflow_quietly()
    from kft.tasks.causal_lm import task as lm_run

    config = lm_run.run_config(_MODEL_DIR.value)
    if _SAMPLER.value:
        config.lm.sampler = _SAMPLER.value
    lm_run.check(config)
    _, causal_lm, _ = lm_run.load_run(_MODEL_DIR.value, config)
    maximum = lm_run.max_length(causal_lm.backbone)
    length = _MAX_LENGTH.value or min(config.lm.max_length, maximum)
    if not 2 <= length <= maximum:
        common.fail(
            f"--max_length must be from 2 to the backbone's {maximum} "
            f"tokens (prompt included), not {length}"
        )
    texts = causal_lm.generate(list(_PROMPT.value), max_length=length)
    for prompt, text in zip(_PROMPT.value, texts):
        print(json.dumps({"prompt": prompt, "generated": text}), flush=True)


def run():
    common.run_main(main)
