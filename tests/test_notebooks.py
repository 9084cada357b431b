"""The course notebooks: each ``NN_*.py`` source and its committed ``.ipynb`` say the same thing.

The ``.py`` (jupytext percent format) is what authors edit; the ``.ipynb`` is what readers see
on GitHub, committed with outputs. These tests fail when one was edited without regenerating
the other, when a notebook was committed without (or with failing) outputs, and when the runner
would not report a failing cell. Executing the notebooks themselves is ``make notebooks``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from course import load_runner

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
ESSAY = "Transformers are Graph Neural Networks"  # Joshi, The Gradient, 2020: the course's basis


def cells(nb) -> list[tuple[str, str]]:
    """What must agree between the pair: the type and the source text of every cell."""
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def pair_differences(source: Path) -> list[str]:
    """Human-readable differences between ``source`` (.py) and its .ipynb; empty if in sync."""
    ipynb = source.with_suffix(".ipynb")
    if not ipynb.exists():
        return [f"{ipynb.name} is missing: run `python notebooks/run_notebooks.py --write`"]
    py_cells = cells(jupytext.read(source))
    nb_cells = cells(nbformat.read(ipynb, as_version=4))
    problems = []
    if len(py_cells) != len(nb_cells):
        problems.append(f"{source.name} has {len(py_cells)} cells, {ipynb.name} {len(nb_cells)}")
    for i, (a, b) in enumerate(zip(py_cells, nb_cells, strict=False)):
        if a != b:
            lines = zip(a[1].splitlines() + [""], b[1].splitlines() + [""], strict=False)
            first = next(((x, y) for x, y in lines if x != y), (a[0], b[0]))
            problems.append(f"cell {i} differs: .py {first[0]!r} vs .ipynb {first[1]!r}")
            break
    return problems


def test_there_is_a_course():
    assert len(SOURCES) >= 6, [s.name for s in SOURCES]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_in_sync(source):
    assert pair_differences(source) == []


def test_sync_check_detects_an_edit(tmp_path):
    source = SOURCES[0]
    copy_py = tmp_path / source.name
    copy_nb = copy_py.with_suffix(".ipynb")
    copy_py.write_text(source.read_text())
    copy_nb.write_text(source.with_suffix(".ipynb").read_text())
    assert pair_differences(copy_py) == []

    # edit one code line in the .py only
    text = copy_py.read_text()
    edited = text.replace("import torch\n", "import torch  # edited\n", 1)
    assert edited != text
    copy_py.write_text(edited)
    assert pair_differences(copy_py)

    # a cell added to the .py only
    copy_py.write_text(text + "\n# %%\nprint('one more cell')\n")
    assert any("cells" in p for p in pair_differences(copy_py))

    # a missing .ipynb
    copy_py.write_text(text)
    copy_nb.unlink()
    assert "missing" in pair_differences(copy_py)[0]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_committed_with_outputs(source):
    """Executed top to bottom in one go, no errors, and figures for GitHub to show."""
    nb = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure in the notebook"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_lesson_shape(source):
    """A lesson: a title, its reading time, the essay, equations, asserted claims, exercises
    with solutions."""
    nb = jupytext.read(source)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert markdown.lstrip().startswith("# Lesson")
    assert re.search(r"Reading time: about [^.]*(minutes|an hour)", nb.cells[0].source)
    assert ESSAY in " ".join(markdown.split())  # cited, whatever the line breaks
    assert "$" in markdown  # LaTeX
    assert re.search(r"^## Exercises", markdown, re.M)
    assert re.search(r"^## Solutions", markdown, re.M) or "<details>" in markdown
    assert code.count("assert ") >= 5


def test_readme_lists_every_lesson():
    """One row per lesson, with the essay section it answers and the time it takes."""
    readme = (NOTEBOOKS / "README.md").read_text()
    assert ESSAY in " ".join(readme.split())
    table = [[cell.strip() for cell in line.strip().strip("|").split("|")]
             for line in readme.splitlines() if line.startswith("| ")]
    header = table[0]
    essay = next(i for i, name in enumerate(header) if "essay" in name)
    reading = header.index("reading")
    for source in SOURCES:
        row = next((r for r in table if source.stem in r[1]), None)
        assert row is not None, f"no row for {source.stem} in notebooks/README.md"
        assert len(row) == len(header), f"{source.stem}: its row has {len(row)} columns"
        assert row[essay], f"{source.stem}: no essay section in its row"
        assert re.fullmatch(r"\d+ min", row[reading]), f"{source.stem}: no reading time"


def test_the_course_fetches_its_data():
    """`make notebooks` (hence `make test`) depends on `make data`, and nothing a reader gets
    names the CI machine's mirror next to the repository; only `.ci/run` may."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^notebooks:[^\n]*\bdata\b", makefile, re.M)
    # the mirror's path as .ci/run names it (read from there, so no test file spells it out)
    mirror = re.search(r"\.\./\w+/data/multi30k", (ROOT / ".ci" / "run").read_text()).group(0)
    texts = [*NOTEBOOKS.glob("*.py"), NOTEBOOKS / "README.md", ROOT / "README.md",
             *(ROOT / "tests").glob("*.py")]
    assert not [p.name for p in texts if mirror in p.read_text()]


def test_runner_names_the_failing_cell(tmp_path, capsys):
    """The runner exits non-zero and names notebook and cell; the source stays untouched."""
    runner = load_runner()
    good = tmp_path / "01_good.py"
    good.write_text("# %%\nx = 1 + 1\n\n# %%\nprint(x)\n")
    bad = tmp_path / "02_bad.py"
    bad.write_text("# %%\nx = 1\n\n# %%\nassert x == 2, 'x is not two'\n")
    before = bad.read_text()

    saved = dict(os.environ)  # the runner sets PYTHONPATH, JUPYTER_PATH, MPLBACKEND
    try:
        assert runner.main(["--dir", str(tmp_path), "01"]) == 0
        assert runner.main(["--dir", str(tmp_path)]) == 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
    err = capsys.readouterr().err
    assert "02_bad.py" in err and "cell 1" in err and "x is not two" in err
    assert "01_good" not in err
    assert bad.read_text() == before
    assert not list(tmp_path.glob("*.ipynb"))  # without --write nothing is written


def load_audit():
    load_runner()  # puts notebooks/ on sys.path
    import audit

    return audit


def test_every_audited_check_is_where_the_audit_says():
    """Each lesson check's assert (threshold included) is in its lesson; each unit-test check
    names a test that records the value and asserts the same threshold."""
    audit = load_audit()
    for check in audit.CHECKS:
        place = audit.where(check)  # raises if the lesson no longer has the assert
        if check.lesson == "tests":
            file, name = place.split("::")
            text = (ROOT / file).read_text()
            body = text[text.index(f"def {name}("):]
            body = body[: body.find("\ndef ", 1) if "\ndef " in body[1:] else None]
            assert f'record_property("{check.value}"' in body, place
            assert f"{check.op} {check.bound}" in body, (place, check.op, check.bound)


def test_audit_covers_every_check_with_a_passing_worst_case():
    """The committed audit measured every check in each of its modes over at least 5 seeds
    (one, for a lesson that reads no seed) and 3 CPU code paths, and the worst case passes the
    threshold the lesson asserts."""
    audit = load_audit()
    results = json.loads(audit.RESULTS.read_text())
    for check in audit.CHECKS:
        seeds = 1 if check.lesson in audit.UNSEEDED else 5
        for mode in check.modes:
            s = audit.summarise(check, mode, results)
            assert s is not None, (check.source, mode)
            assert len(s["seeds"]) >= seeds and len(s["paths"]) >= 3, (check.source, mode)
            assert s["missing"] == 0 and s["failed"] == 0, (check.source, mode, s)


def test_readme_audit_table_is_generated_from_the_results():
    audit = load_audit()
    readme = (NOTEBOOKS / "README.md").read_text()
    section = readme[readme.index(audit.BEGIN) + len(audit.BEGIN): readme.index(audit.END)]
    assert section.strip() == audit.table(json.loads(audit.RESULTS.read_text())).strip()


def test_recording_runs_past_a_failing_cell(tmp_path, capsys):
    """With --record the runner reports the failure and still writes the lesson's values."""
    runner = load_runner()
    lesson = tmp_path / "01_toy.py"
    lesson.write_text('# %%\nerrors = {"sum": 0.5, "mean": 3.0, "max": 2.5}\n\n'
                      "# %%\nassert errors['sum'] < 0.05\n\n# %%\nvariance = 2.0\n")
    record = tmp_path / "values.json"
    saved = dict(os.environ)
    try:
        assert runner.main(["--dir", str(tmp_path), "01", "--record", str(record)]) == 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert "AssertionError" in capsys.readouterr().err
    assert json.loads(record.read_text()) == {'errors["sum"]': 0.5,
                                              'min(errors["mean"], errors["max"]) - variance': 0.5}
