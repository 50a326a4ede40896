"""The report of `kft-benchmark compare`: rows, ratios, targets, table.

Each case's result becomes a row (median samples/s of its repeats, peak
memory, FLOP/s); `add_ratios` puts kft's median over every row's of the
same case and the share of the measured matmul peak; `targets` checks the
speed issue's targets; `format_compare` prints the table.
"""

from kft.bench import machine as machine_lib
from kft.bench.peers import measure

LABELS = {
    ("text_fixed", "kft"): "kft",
    ("text_fixed", "keras"): "keras-hub TextClassifier.fit",
    ("text_fixed", "torch"): "PyTorch + transformers",
    ("text_epoch", "kft"): "kft, length-grouped batches",
    ("text_epoch", "keras"): "keras-hub, every row padded",
    ("text_epoch", "torch"): "PyTorch, dynamic padding, grouped",
    ("images", "kft"): "kft",
    ("images", "keras"): "keras.applications fit",
    ("images", "kft_cached"): "kft, cached features (per epoch)",
    ("utilization", "matmul"): "float32 matmul peak",
}
FROZEN_LABEL = "kft, backbone recomputed each step"


def row(spec, result):
    """The report's row of one case's result."""
    label = LABELS.get((spec["suite"], spec["peer"]), spec["peer"])
    if spec["peer"] == "kft" and spec["case"].endswith("frozen"):
        label = FROZEN_LABEL
    if result.get("precision", "float32") != "float32":
        label += f", {result['precision']}"
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
    for key in (
        "error",
        "gflops",
        "warmup_seconds",
        "features_seconds",
        "batch_shapes",
        "precision",
    ):
        if key in result:
            row[key] = result[key]
    return row


def describe(row):
    """A row in a few words, for the progress log."""
    if row.get("error"):
        return f"failed: {row['error']}"
    if "gflops" in row:
        return ", ".join(f"{k} {v:.1f}" for k, v in row["gflops"].items())
    return f"{row['median']:.2f} samples/s"


def add_ratios(report):
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
        # Issue 26's targets.
        if suite == "text_fixed":
            ratio(f"{where}: kft / PyTorch", kft, torch, "median", 1.2)
            ratio(f"{where}: kft / keras-hub", kft, keras, "median", 1.2)
        if suite == "text_epoch":
            ratio(f"{where}: kft / PyTorch", kft, torch, "median", 1.3)
            ratio(f"{where}: kft / keras-hub", kft, keras, "median", 1.0)
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
    for row in report["rows"]:
        if row.get("features_seconds") is not None:
            lines.append(
                f"images cached features: median of {repeats} epochs of the "
                "head after 1 warm-up epoch; the features were computed "
                f"once in {row['features_seconds']:.1f} s (not in the rate)"
            )
    lines.append(machine_lib.one_line(machine))
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
