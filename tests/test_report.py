"""report.html and kft-compare: written by real runs, rendered by Chromium.

The pages are opened in headless Chromium with every host unresolvable,
so a page that needed the network would show holes; the screenshot must
not be blank and the rendered DOM must hold the expected headings and
images. Without Chromium these tests skip, unless KFT_REQUIRE_CHROMIUM is
set (CI sets it, so they never skip there).
"""

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from conftest import TINY_IMAGE_FLAGS, run_cli, write_run_files

from kft.report import compare, run_files, sections
from kft.report import page as report

HEADINGS = [
    "Summary",
    "Configuration",
    "Training curves",
    "Per-class precision, recall and F1",
    "Confusion matrix",
    "Most confident mistakes",
    "Timing",
]
PLOTS = (
    run_files.CURVES_FILE,
    run_files.CONFUSION_FILE,
    run_files.NORMALIZED_FILE,
)


def _chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("KFT_REQUIRE_CHROMIUM"):
        pytest.fail("KFT_REQUIRE_CHROMIUM is set but chromium is missing")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def _open(page, folder, *mode):
    """Runs headless Chromium on `page` with no network; returns stdout."""
    result = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={folder / 'chromium-profile'}",
            *mode,
            f"file://{page}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _screenshot_is_not_blank(page, folder, height=2400):
    from PIL import Image

    shot = folder / "shot.png"
    _open(page, folder, f"--screenshot={shot}", f"--window-size=1200,{height}")
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.std() > 20, pixels.std()
    assert np.mean(pixels < 200) > 0.02  # text, tables and plots, not white


def _rendered(page, folder):
    """(h2 headings, <img> count) of the DOM Chromium rendered."""
    dom = _open(page, folder, "--dump-dom")
    headings = re.findall(r"<h2>(.*?)</h2>", dom)
    sources = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", dom)
    assert len(sources) == len(re.findall(r"<img\b", dom))
    for source in sources:  # embedded, so the page needs no other file
        assert source.startswith("data:image/png;base64,"), source[:80]
    return headings, len(sources)


def _train(model_dir, *overrides, experiment="text_classifier"):
    result = run_cli(
        "kft-train",
        f"--experiment={experiment}",
        f"--model_dir={model_dir}",
        "--config.verbose=0",
        "--config.export=false",
        *overrides,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def text_runs(tiny_bert, text_csv, tmp_path_factory):
    """Two tiny text runs of different plans: {plan: (folder, stdout)}."""
    train, test = text_csv
    runs = {}
    for plan, epochs in (("two_phase", 2), ("linear_probe", 2)):
        folder = tmp_path_factory.mktemp("runs") / plan
        result = _train(
            folder,
            f"--config.backbone={tiny_bert}",
            f"--config.data.train={train}",
            f"--config.data.test={test}",
            f"--config.plan={plan}",
            f"--config.epochs={epochs}",
            "--config.learning_rate=1e-3",
        )
        runs[plan] = (folder, result.stdout)
    return runs


def _expected_headings(folder):
    metrics = json.loads((folder / "metrics.json").read_text())
    extra = ["Other figures"] if sections.other_figures(metrics) else []
    return HEADINGS + extra


def test_text_run_report_renders(text_runs, tmp_path):
    folder, stdout = text_runs["two_phase"]
    page = folder / run_files.REPORT_FILE
    assert f"kft: report: {page}" in stdout
    for name in PLOTS:
        assert (folder / name).read_bytes()[:4] == b"\x89PNG", name
    text = page.read_text()
    assert "http://" not in text and "https://" not in text
    _screenshot_is_not_blank(page, tmp_path)
    headings, images = _rendered(page, tmp_path)
    assert headings == _expected_headings(folder)
    assert images == len(PLOTS)  # text mistakes are text, not images
    rows = [
        json.loads(line)
        for line in (folder / "predictions.jsonl").read_text().splitlines()
    ]
    metrics = json.loads((folder / "metrics.json").read_text())
    right = sum(row["label"] == row["predicted"] for row in rows)
    assert right / len(rows) == pytest.approx(metrics["accuracy"])
    assert [row["text"] for row in rows[:2]] == _test_texts()[:2]


def _test_texts():
    from conftest import make_texts

    return [row["text"] for row in make_texts(21, seed=2)]


def test_image_run_report_shows_mistakes_as_thumbnails(image_folder, tmp_path):
    folder = tmp_path / "run"
    _train(
        folder,
        *TINY_IMAGE_FLAGS,
        f"--config.data.train={image_folder}",
        "--config.plan=full",
        "--config.epochs=1",
        "--config.data.validation_fraction=0.25",
        "--config.data.test_fraction=0.25",
        experiment="image_classifier",
    )
    rows = [
        json.loads(line)
        for line in (folder / "predictions.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 4 and all(os.path.isfile(r["image"]) for r in rows)
    wrong = sum(row["label"] != row["predicted"] for row in rows)
    page = folder / run_files.REPORT_FILE
    _screenshot_is_not_blank(page, tmp_path)
    headings, images = _rendered(page, tmp_path)
    assert headings == _expected_headings(folder)
    assert images == len(PLOTS) + wrong


# === The page from hand-written run files (no training) ===


def test_report_escapes_text_and_lists_any_extra_figure(tmp_path):
    write_run_files(
        tmp_path / "run",
        [
            {
                "text": "right-answer",
                "label": "cat",
                "predicted": "cat",
                "probability": 0.99,
            },
            {
                "text": "<script>alert(1)</script>",
                "label": "cat",
                "predicted": "<dog>",
                "probability": 0.6,
            },
            {
                "text": "sure <b>dog</b>",
                "label": "<dog>",
                "predicted": "cat",
                "probability": 0.9,
            },
        ],
        roc_auc=0.875,
        threshold={"value": 0.35, "macro_f1": 0.61},
    )
    text = open(report.write(str(tmp_path / "run"))).read()
    assert "<script>" not in text and "<b>dog</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;dog&gt;" in text
    mistakes = text.split("<h2>Most confident mistakes</h2>")[1]
    assert mistakes.index("sure &lt;b&gt;dog") < mistakes.index("alert(1)")
    assert "right-answer" not in mistakes.split("<h2>")[0]
    other = text.split("<h2>Other figures</h2>")[1]
    for field in ("roc_auc", "0.8750", "threshold.value", "0.3500"):
        assert field in other, field


def test_image_mistakes_are_embedded_thumbnails(tmp_path):
    from PIL import Image

    paths = []
    for index in range(3):
        path = tmp_path / f"photo{index}.png"
        Image.new("RGB", (300, 200), (index * 80, 30, 90)).save(path)
        paths.append(str(path))
    predictions = [
        {
            "image": path,
            "label": "cat",
            "predicted": "<dog>",
            "probability": 0.7,
        }
        for path in paths
    ]
    predictions.append(
        {
            "image": str(tmp_path / "gone.png"),
            "label": "cat",
            "predicted": "<dog>",
            "probability": 0.5,
        }
    )
    write_run_files(tmp_path / "run", predictions)
    text = open(report.write(str(tmp_path / "run"), mistakes=3)).read()
    thumbnails = re.findall(r"<img class='thumbnail'[^>]*>", text)
    assert len(thumbnails) == 3
    assert "gone.png (unreadable)" not in text  # only the top 3 are shown
    assert "photo2.png" in text


# === kft-compare ===


def test_kft_compare_names_the_winner(text_runs, tmp_path):
    folders = [str(folder) for folder, _ in text_runs.values()]
    output = tmp_path / "out" / "compare.html"
    result = run_cli("kft-compare", *folders, f"--output={output}")
    assert result.returncode == 0, result.stderr[-3000:]
    scores = {}
    for plan, (folder, _) in text_runs.items():
        metrics = json.loads((folder / "metrics.json").read_text())
        # Chosen on validation: the kept epoch's figures, not the test's.
        scores[plan] = compare.kept_validation(run_files.load(str(folder)))
        line = next(
            line for line in result.stdout.splitlines() if line.startswith(plan)
        )
        assert f"{metrics['macro_f1']:.4f}" in line
        assert f"{metrics['accuracy']:.4f}" in line
        assert f"{scores[plan][0]:.4f}" in line
    best = max(scores, key=scores.get)
    assert (
        "Winner by validation macro-F1 (of the epoch each run kept; "
        "validation accuracy breaks ties; the test split decided nothing, "
        f"its figures are reported): {best} ({best}), validation macro-F1 "
        f"{scores[best][0]:.4f}"
    ) in result.stdout
    assert "head 0.001, full 0.001" in result.stdout  # two_phase's rates
    assert (output.parent / "compare.png").is_file()
    _screenshot_is_not_blank(output, tmp_path, height=900)
    headings, images = _rendered(output, tmp_path)
    assert headings == ["Winner", "Runs", "Validation curves", "Run folders"]
    assert images == 1


def test_kft_compare_refuses_a_folder_that_is_no_run(text_runs, tmp_path):
    folder, _ = text_runs["two_phase"]
    result = run_cli("kft-compare", str(folder), str(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert str(tmp_path) in lines[0] and "not a finished kft run" in lines[0]


def test_report_shows_the_interval_in_the_summary(tmp_path):
    rows = [
        {"text": "a", "label": "cat", "predicted": "cat", "probability": 0.9},
        {"text": "b", "label": "dog", "predicted": "cat", "probability": 0.6},
    ]
    interval = {
        "accuracy": [0.25, 0.75],
        "macro_f1": [0.2, 0.7],
        "level": 0.95,
        "resamples": 1000,
    }
    write_run_files(tmp_path / "run", rows, interval=interval)
    text = open(report.write(str(tmp_path / "run"))).read()
    summary = text.split("<h2>Summary</h2>")[1].split("<h2>")[0]
    assert "95% interval over these examples (bootstrap)" in summary
    assert "accuracy 0.2500-0.7500, macro-F1 0.2000-0.7000" in summary
    assert "interval.level" not in text


def test_configuration_says_where_and_how_the_run_computed(tmp_path):
    """The device the run trained on and the precision, XLA and steps per
    call it resolved (config.json) are rows of the configuration table."""
    rows = [
        {"text": "a", "label": "cat", "predicted": "cat", "probability": 0.9}
    ]
    write_run_files(tmp_path / "run", rows)
    (tmp_path / "run" / "config.json").write_text(
        json.dumps(
            {
                "plan": "full",
                "trained_on": "GPU NVIDIA A100 (compute 8.0)",
                "precision": "mixed_bfloat16",
                "jit_compile": True,
                "steps_per_execution": 8,
            }
        )
    )
    text = open(report.write(str(tmp_path / "run"))).read()
    table = text.split("<h2>Configuration</h2>")[1].split("<details>")[0]
    for shown in (
        "trained on",
        "GPU NVIDIA A100 (compute 8.0)",
        "mixed_bfloat16",
        "steps per call",
        "XLA (jit_compile)",
    ):
        assert shown in table, shown


def test_plots_of_names_the_font_lacks_log_no_warnings():
    # Class names in a script the plot font lacks (CJK in DejaVu Sans):
    # matplotlib warned once per glyph, with kft's source lines, in the log.
    import warnings

    from kft.report import plots

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plots.confusion([[1, 0], [0, 1]], ["狗", "猫"], False)  # PNG bytes
    assert not [w for w in caught if "Glyph" in str(w.message)], caught
