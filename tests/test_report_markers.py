"""Generated sections: only the text between a section's own markers changes."""

import pytest

from repro.report.markers import markers, read_section, write_section


def test_a_section_is_replaced_and_nothing_else(tmp_path):
    page = tmp_path / "README.md"
    page.write_text("top\n<!-- a:begin -->\nold a\n<!-- a:end -->\nmiddle\n"
                    "<!-- b:begin -->\nold b\n<!-- b:end -->\nend\n")
    write_section(page, "a", "new a\nsecond line")
    assert page.read_text() == ("top\n<!-- a:begin -->\nnew a\nsecond line\n<!-- a:end -->\n"
                                "middle\n<!-- b:begin -->\nold b\n<!-- b:end -->\nend\n")
    assert read_section(page, "a") == "new a\nsecond line"
    assert read_section(page, "b") == "old b"
    write_section(page, "a", r"a \1 backslash")  # the text is never read as a pattern
    assert read_section(page, "a") == r"a \1 backslash"


def test_missing_markers_are_a_one_line_error(tmp_path):
    page = tmp_path / "README.md"
    page.write_text("no markers here\n")
    with pytest.raises(SystemExit) as missing:
        write_section(page, "results", "x")
    begin, end = markers("results")
    assert str(missing.value.code) == f"error: {page}: missing {begin} / {end} markers"
    assert page.read_text() == "no markers here\n"
