"""The lessons' asserts must catch a broken lesson.

``notebooks/README.md`` promises that every claim about a result is checked by an ``assert``
or shown by a measurement next to it. An assert that holds whatever the code does would break
that promise silently, so here we break a lesson on purpose: copy its source to a temporary
directory, replace one key line with a plausible mistake, execute the copy with the course
runner, and require that it fails at an ``assert`` in the cell that checks that line (and not
earlier, or for another reason).

Lesson 3 is used because it runs in seconds. Each mutation is a mistake a student could make:

* dropping the ``1/sqrt(d_k)`` scaling of the scores: attention still runs and still sums to
  one, but no longer equals ``F.scaled_dot_product_attention``;
* dropping the residual connection around attention: the layer still runs, but no longer
  equals the project's ``EncoderLayer``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from course import load_runner

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LESSON = "03_transformer_layer.py"

# (name, line in the lesson, its mutated version, text of the cell that must fail)
MUTATIONS = [
    (
        "no-sqrt-dk-scaling",
        'g.ndata.update({"q": q / q.shape[-1] ** 0.5, "k": k, "v": v})',
        'g.ndata.update({"q": q, "k": k, "v": v})',
        "o_dense = F.scaled_dot_product_attention(",
    ),
    (
        "no-residual-around-attention",
        "x = x + self.mha(g, self.ln1(x))",
        "x = self.mha(g, self.ln1(x))",
        "lib_layer = EncoderLayer(",
    ),
]


@pytest.mark.parametrize(("name", "line", "mutated", "failing_cell"), MUTATIONS,
                         ids=[m[0] for m in MUTATIONS])
def test_mutated_lesson_fails_at_its_check(tmp_path, capsys, name, line, mutated, failing_cell):
    source = (NOTEBOOKS / LESSON).read_text()
    # the mutation must still apply: if the lesson is rewritten, update this test with it
    assert source.count(line) == 1, f"{LESSON} no longer contains {line!r} exactly once"
    (tmp_path / LESSON).write_text(source.replace(line, mutated))

    runner = load_runner()
    saved = dict(os.environ)  # the runner sets PYTHONPATH, JUPYTER_PATH, MPLBACKEND
    try:
        status = runner.main(["--dir", str(tmp_path)])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    err = capsys.readouterr().err

    assert status == 1, f"lesson 3 with mutation {name!r} ran to the end: its asserts miss it"
    assert "AssertionError" in err, err[-2000:]
    # it failed where the mutated computation is checked: that cell's source is in the report
    assert failing_cell in err, err[-2000:]
    assert not list(tmp_path.glob("*.ipynb"))  # the runner wrote nothing
