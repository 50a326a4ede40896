"""kft-compare chooses its winner on validation figures, not on the test
split, wherever every run has them, and says which split decided."""

import json

from conftest import write_run_files

from kft.report import compare


def _run(folder, test_f1, val_f1s, monitor="val_macro_f1", val_loss=None):
    """A finished run by hand: test macro-F1 `test_f1`, one epoch per
    validation macro-F1 in `val_f1s` (None: no validation data)."""
    write_run_files(folder, [], macro_f1=test_f1, accuracy=test_f1)
    (folder / "config.json").write_text(
        json.dumps({"plan": "full", "monitor": monitor, "learning_rate": 1e-3})
    )
    if val_f1s is None:
        (folder / "history.csv").write_text(
            "phase,epoch,learning_rate,loss\nfull,1,0.001,0.9\n"
        )
        return str(folder)
    losses = val_loss or [1.0] * len(val_f1s)
    lines = [
        "phase,epoch,learning_rate,loss,val_loss,val_macro_f1,val_accuracy"
    ]
    for epoch, (f1, loss) in enumerate(zip(val_f1s, losses), start=1):
        lines.append(f"full,{epoch},0.001,0.5,{loss},{f1},{f1}")
    (folder / "history.csv").write_text("\n".join(lines) + "\n")
    return str(folder)


def test_the_winner_is_chosen_on_validation(tmp_path, capsys):
    """b has the better test figure, a the better validation one: a wins."""
    a = _run(tmp_path / "a", 0.70, [0.6, 0.9, 0.8])
    b = _run(tmp_path / "b", 0.80, [0.7, 0.85])
    compare.compare([a, b], str(tmp_path / "compare.html"))
    out = capsys.readouterr().out
    assert "Winner by validation macro-F1" in out
    assert ": a (full), validation macro-F1 0.9000" in out
    assert "test macro-F1 0.7000" in out
    assert "the test split decided nothing" in out
    assert "Winner by validation" in (tmp_path / "compare.html").read_text()


def test_the_kept_epoch_by_the_runs_monitor_counts(tmp_path, capsys):
    """A run monitoring val_loss kept its lowest-loss epoch; its validation
    macro-F1 is that epoch's, not its best one."""
    a = _run(tmp_path / "a", 0.7, [0.95, 0.6], "val_loss", val_loss=[0.9, 0.3])
    b = _run(tmp_path / "b", 0.6, [0.8])
    rows = compare.compare([a, b], str(tmp_path / "compare.html"))
    assert [row.validation_f1 for row in rows] == [0.6, 0.8]
    assert ": b (full), validation macro-F1 0.8000" in capsys.readouterr().out


def test_without_validation_everywhere_the_test_split_decides(tmp_path, capsys):
    a = _run(tmp_path / "a", 0.70, [0.9])
    b = _run(tmp_path / "b", 0.80, None)
    compare.compare([a, b], str(tmp_path / "compare.html"))
    out = capsys.readouterr().out
    assert "Winner by test macro-F1" in out
    assert "b (full), macro-F1 0.8000" in out
    assert "b has no validation figures" in out


def test_an_exact_tie_names_no_winner(tmp_path, capsys):
    """Equal validation macro-F1 and accuracy: the order of the folders
    given must not pick a winner."""
    a = _run(tmp_path / "a", 0.70, [0.5, 0.8])
    b = _run(tmp_path / "b", 0.75, [0.8])
    c = _run(tmp_path / "c", 0.90, [0.6])
    folders = {"a": a, "b": b}
    for order in ("ab", "ba"):
        compare.compare(
            [folders[name] for name in order] + [c], str(tmp_path / "x.html")
        )
        out = capsys.readouterr().out
        assert "No single winner: a and b tie" in out, out
        assert "validation macro-F1 0.8000" in out
        assert "Winner" not in out
