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
