"""The Hugging Face `Trainer` peer of `kft-benchmark accuracy` (the bench
extra): what a PyTorch user who fine-tunes a classifier gets at the
library's defaults. `AutoModelForSequenceClassification` on the same
local backbone folder, `TrainingArguments` left at their defaults (AdamW
at 5e-5, linear decay, no warmup, no weight decay) apart from the epochs
and batch size the spec names (3 and 8, the defaults, unless --tiny), and
the default collator, which pads each batch to its longest row. No
checkpoints, no logging integrations; the device is the Trainer's choice
(a GPU where there is one, as kft's runs). Runs in its own process and
never imports TensorFlow.
"""


class _Rows:
    """A list of tokenized rows as the torch Dataset `Trainer` takes."""

    def __init__(self, encoded, labels=None):
        self.encoded, self.labels = encoded, labels

    def __len__(self):
        return len(self.encoded["input_ids"])

    def __getitem__(self, index):
        row = {key: values[index] for key, values in self.encoded.items()}
        if self.labels is not None:
            row["labels"] = self.labels[index]
        return row


def _encode(tokenizer, rows, max_length):
    texts = [row["text"] for row in rows]
    pairs = (
        [row["text_pair"] for row in rows] if "text_pair" in rows[0] else None
    )
    return tokenizer(texts, pairs, truncation=True, max_length=max_length)


def classify(spec):
    """Fine-tunes on spec["train"], predicts spec["scored"]; returns
    {"predicted": [class index per scored row]}."""
    import numpy as np
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.set_seed(spec["seed"])
    labels = spec["labels"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(spec["model"])
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        spec["model"], num_labels=len(labels), ignore_mismatched_sizes=True
    )
    arguments = transformers.TrainingArguments(
        output_dir=spec["output_dir"],
        num_train_epochs=spec["epochs"],
        per_device_train_batch_size=spec["batch_size"],
        per_device_eval_batch_size=spec["batch_size"],
        seed=spec["seed"],
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    train_ids = [labels.index(row["label"]) for row in spec["train"]]
    trainer = transformers.Trainer(
        model=model,
        args=arguments,
        train_dataset=_Rows(
            _encode(tokenizer, spec["train"], spec["max_length"]), train_ids
        ),
        processing_class=tokenizer,
    )
    trainer.train()
    scored = _Rows(_encode(tokenizer, spec["scored"], spec["max_length"]))
    logits = trainer.predict(scored).predictions
    return {"predicted": np.argmax(logits, axis=-1).tolist()}
