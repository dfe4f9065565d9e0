"""stn_icnn_jax.markdown: the tables the benchmark scripts write, worked by hand."""

from stn_icnn_jax import markdown


def test_table_lines_by_hand():
    lines = markdown.table(["stage", "median s", "ratio"],
                           [["rough", 0.5, "2.00x"], ["parts", "", 3]])
    assert lines == [
        "| stage | median s | ratio |",
        "|---|---|---|",
        "| rough | 0.5 | 2.00x |",
        "| parts |  | 3 |",
    ]
    assert markdown.table(["a"], []) == ["| a |", "|---|"]


def test_write_creates_the_folder_and_returns_the_text(tmp_path):
    path = tmp_path / "results" / "new" / "bench.md"
    text = markdown.write(path, ["# Title", "", *markdown.table(["x"], [[1]]), ""])
    assert text == "# Title\n\n| x |\n|---|\n| 1 |\n"
    assert path.read_text() == text


def test_report_ends_with_the_command_prints_and_writes(tmp_path, capsys):
    path = tmp_path / "r.md"
    text = markdown.report(["# R", ""], "experiments/x.py", ["--a", "1"], path)
    assert text == "# R\n\n\nCommand: `python experiments/x.py --a 1`\n"
    assert path.read_text() == text
    assert capsys.readouterr().out == text + "\n"
    assert markdown.report(["# R"], "x.py", [], None) == "# R\n\nCommand: `python x.py`\n"
