"""The PyTorch + Hugging Face transformers peer (the `bench` extra).

`AutoModelForSequenceClassification.from_pretrained` on the same local
folder, `AutoTokenizer` from it, and the training loop a transformers user
writes (what `Trainer` does per step): AdamW (weight decay 0.01, eps 1e-6,
as kft's), a cosine schedule with warmup, gradients clipped to norm 1.
Fixed shapes pad every row to the case's length; whole epochs pad each
batch to its longest row (`DataCollatorWithPadding`) and group examples
by length (`LengthGroupedSampler`, as `group_by_length=True`).
"""

import json
import time

from kft.bench.peers import measure

LEARNING_RATE = 5e-5


def _examples(spec):
    with open(spec["data"]) as file:
        return json.load(file)


def _setup(spec, num_classes, total_steps):
    import torch
    import transformers

    transformers.logging.set_verbosity_error()  # the load report's table
    torch.manual_seed(spec["seed"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(spec["model"])
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        spec["model"], num_labels=num_classes, ignore_mismatched_sizes=True
    )
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=LEARNING_RATE, weight_decay=0.01, eps=1e-6
    )
    schedule = transformers.get_cosine_schedule_with_warmup(
        optimizer, max(1, total_steps // 10), total_steps
    )
    return tokenizer, model, optimizer, schedule


def _step(model, optimizer, schedule, batch):
    import torch

    loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)


def text_fixed(spec):
    import torch

    batch, length = spec["batch_size"], spec["length"]
    total = spec["warmup"] + spec["steps"] * spec["repeats"]
    examples = _examples(spec)
    tokenizer, model, optimizer, schedule = _setup(
        spec, examples["num_classes"], total
    )
    encoded = tokenizer(
        examples["values"],
        padding="max_length",
        truncation=True,
        max_length=length,
        return_tensors="pt",
    )
    labels = torch.tensor(examples["label_ids"])
    count = len(labels)
    ends = {}
    for step in range(total):
        start = (step * batch) % count
        rows = slice(start, start + batch)
        inputs = {key: value[rows] for key, value in encoded.items()}
        _step(model, optimizer, schedule, {**inputs, "labels": labels[rows]})
        ends[step + 1] = time.perf_counter()
    rates = measure.step_rates(
        ends, spec["warmup"], spec["steps"], spec["repeats"], batch
    )
    return {"rates": rates}


def text_epoch(spec):
    """Whole epochs from raw texts, tokenizing included; one warm-up."""
    import torch
    import transformers
    from transformers.trainer_pt_utils import LengthGroupedSampler

    batch = spec["batch_size"]
    epochs = 1 + spec["repeats"]
    examples = _examples(spec)
    count = len(examples["values"])
    tokenizer, model, optimizer, schedule = _setup(
        spec, examples["num_classes"], epochs * -(-count // batch)
    )
    collate = transformers.DataCollatorWithPadding(tokenizer)
    seconds = []
    for epoch in range(epochs):
        started = time.perf_counter()
        encoded = tokenizer(
            examples["values"], truncation=True, max_length=spec["length"]
        )
        rows = [
            {key: values[i] for key, values in encoded.items()}
            | {"labels": label}
            for i, label in enumerate(examples["label_ids"])
        ]
        sampler = LengthGroupedSampler(
            batch,
            lengths=[len(ids) for ids in encoded["input_ids"]],
            generator=torch.Generator().manual_seed(spec["seed"] + epoch),
        )
        loader = torch.utils.data.DataLoader(
            rows, batch_size=batch, sampler=sampler, collate_fn=collate
        )
        for inputs in loader:
            _step(model, optimizer, schedule, inputs)
        seconds.append(time.perf_counter() - started)
    return {
        "rates": [count / s for s in seconds[1:]],
        "warmup_seconds": seconds[0],
    }
