"""Fine-tune a keras-hub causal language model on text or instructions.

    kft-train --experiment=causal_lm --model_dir=runs/chat \
        --config.backbone=gpt2_base_en \
        --config.data.train=chat.jsonl
    kft-generate --model_dir=runs/chat --prompt="Q: what is kft?"

The backbone is a keras-hub CausalLM preset (GPT-2, Gemma, Llama,
Mistral, Qwen, ...; online) or a local preset folder (offline). Data is a
.txt file (documents separated by blank lines; every token is learned) or
.jsonl with `prompt` and `response` (only the response is learned;
--config.lm.prompt_column / response_column rename them). 10% is held out
for validation. Examples are packed into rows of 256 tokens.

Defaults: every layer trainable (plan full) for 2 epochs at a peak 5e-5
with warmup and cosine decay, AdamW; backbones of 1B parameters or more
train rank-8 LoRA adapters instead (--config.lm.lora=on|off|auto). The
run reports validation loss and perplexity and writes greedy sample
generations for a few validation prompts into metrics.json; the export
has a `generate` signature (prompt strings in, text out).

Expected result: not measured by kft (no causal LM weights can be fetched
offline); tests/test_generation.py fine-tunes a tiny GPT-2 built in the
test through this experiment.
"""

from kft.config import default_config


def get_config():
    config = default_config()
    config.task = "causal_lm"
    config.backbone = "gpt2_base_en"
    config.data.validation_fraction = 0.1
    config.data.test_fraction = 0.0
    config.plan = "full"
    config.epochs = 2
    config.learning_rate = 5e-5
    config.monitor = "val_loss"
    return config
