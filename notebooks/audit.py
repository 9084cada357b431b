"""The audit of every check whose value comes from training, sampling or timing.

A lesson asserts claims such as "the model learns to reverse digit strings: 97% exact match".
The number behind such a claim depends on the seed and on the CPU: math libraries take other
code paths on other processors, a trained result differs in its last bits and then in its
outcome. A threshold set at the edge of what one machine measured fails on the next one.

``CHECKS`` lists those checks: the lessons' asserts (each with the text of its assert, which
must occur in the lesson), and the unit tests with a trained threshold (each records its value
with pytest's ``record_property``). ``python notebooks/audit.py`` measures every one of them
under several seeds (``DGLT_SEED``) and CPU code paths (``PATHS``), writes the values to
``notebooks/audit.json`` and the table between the audit markers of ``notebooks/README.md``:
each check with its threshold and its worst measured case.

    python notebooks/audit.py                      # the whole audit (`make audit`): hours
    python notebooks/audit.py --seeds 0 1 --paths native --modes quick --lessons 04
    python notebooks/audit.py --table              # only rewrite the README table from the JSON
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "audit.json"
README = HERE / "README.md"
BEGIN, END = "<!-- audit:begin -->", "<!-- audit:end -->"

# CPU code paths, each an environment that makes PyTorch (or its BLAS) compute differently.
# On an AVX2 machine "native" and ATEN_CPU_CAPABILITY=avx2 are the same path; MKL's
# conditional-reproducibility mode then stands in for a third CPU (it changes MKL's GEMM).
PATHS = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "default": {"ATEN_CPU_CAPABILITY": "default"},
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
}
MODES = {"default": {}, "quick": {"DGLT_QUICK": "1"}}
#: lessons that train nothing and read no seed (``DGLT_SEED``): one run per CPU path
UNSEEDED = {"08"}


@dataclass(frozen=True)
class Check:
    """One claim whose number varies with seed and CPU.

    ``value`` and ``bound`` are Python expressions evaluated where the claim is checked (in
    the lesson's namespace after it ran, or recorded by the test under ``value``); the claim
    holds when ``value <op> bound``. ``source`` is the assert (or test) as written.
    """

    lesson: str  # "01".."08", or "tests" for a unit test
    source: str  # the assert's text in the lesson, or the test's node id
    claim: str
    value: str
    op: str  # "<", "<=", ">", ">="
    bound: str
    modes: tuple[str, ...] = ("default", "quick")

    def holds(self, value: float, bound: float) -> bool:
        return {"<": value < bound, "<=": value <= bound,
                ">": value > bound, ">=": value >= bound}[self.op]

    def margin(self, value: float, bound: float) -> float:
        """How far the value is on the passing side of the bound (negative: it fails)."""
        return bound - value if self.op.startswith("<") else value - bound


def _c(lesson, source, claim, value, op, bound, modes=("default", "quick")) -> Check:
    return Check(lesson, source, claim, value, op, str(bound), modes)


def _live(source, claim, value, op, bound) -> Check:
    """A check of lesson 08 on the live default model: no training, so no quick mode."""
    return _c("08", source, claim, value, op, bound, modes=("default",))


def _ratio_of_ranks(tensor: str, k: int) -> str:
    """The value that keeps a ranking as it is: the k-th largest entry of ``tensor`` over the
    next one (a ratio above 1 keeps the k-th apart from the (k+1)-th)."""
    ranked = f"{tensor}.flatten().sort().values"
    return f"{ranked}[-{k}].item() / {ranked}[-{k + 1}].item()"


CHECKS: list[Check] = [
    _c("01", 'assert errors["sum"] < 0.05', "a sum aggregator learns to count degrees (test MSE)",
       'errors["sum"]', "<", 0.05),
    _c("01", 'assert errors["mean"] >= variance - 1e-4',
       "mean and max cannot count: their error is the variance (error - variance)",
       'min(errors["mean"], errors["max"]) - variance', ">=", -1e-4),
    _c("02", "assert accuracy >= 0.85", "GAT on the karate club from two labels (accuracy)",
       "accuracy", ">=", 0.85),
    _c("02", "assert acc_attention >= 0.9", "whom to trust: attention's accuracy",
       "acc_attention", ">=", 0.9),
    _c("02", "acc_attention >= acc_uniform + 0.2", "attention beats equal weights (gain)",
       "acc_attention - acc_uniform", ">=", 0.2),
    _c("02", "mass > 0.5", "attention goes to the reliable neighbours (mass)", "mass", ">", 0.5),
    _c("02", "assert change > 0.01", "GAT's receiver term changes the weights (largest change)",
       "change", ">", 0.01),
    _c("03", "0.7 < row_length < 1.4", "embedding rows have length about 1 (lower side)",
       "row_length", ">", 0.7),
    _c("03", "0.7 < rms < 1.4", "sqrt(d)-scaled coordinates have RMS about 1 (lower side)",
       "rms", ">", 0.7),
    _c("03", "assert 0.9 < raw.std().item() / width**0.5 < 1.1",
       "the spread of q.k grows as sqrt(d_k) (at d_k = 256, distance from 1)",
       "abs(raw.std().item() / width**0.5 - 1)", "<", 0.1),
    _c("03", "assert heaviest_raw > 0.85", "unscaled scores are nearly one-hot (d_k = 256)",
       "heaviest_raw", ">", 0.85),
    _c("03", 'assert final_loss["post-norm"] > 0.65', "post-norm without warm-up learns nothing",
       'final_loss["post-norm"]', ">", 0.65),
    _c("03", 'assert final_loss["pre-norm"] < 0.65', "pre-norm learns without warm-up",
       'final_loss["pre-norm"]', "<", 0.65),
    _c("03", 'final_loss["post-norm + warm-up"] < 0.65', "post-norm learns with a warm-up",
       'final_loss["post-norm + warm-up"]', "<", 0.65),
    _c("03", "heaviest < 0.5", "scaled scores are not (d_k = 256)", "heaviest", "<", 0.5),
    _c("03", "0.7 < word_length / pe_table.norm(dim=1)[0]",
       "sqrt(d) E[w] has the scale of PE (ratio, lower side)",
       "word_length / pe_table.norm(dim=1)[0].item()", ">", 0.7),
    _c("03", "pe_table.norm(dim=1)[0] < 2  # same scale",
       "sqrt(d) E[w] has the scale of PE (ratio, upper side)",
       "word_length / pe_table.norm(dim=1)[0].item()", "<", 2),
    _c("03", "assert row_length / pe_table.norm(dim=1)[0] < 0.5",
       "without sqrt(d), E[w] is much smaller than PE (ratio)",
       "row_length / pe_table.norm(dim=1)[0].item()", "<", 0.5),
    _c("03", "assert token_scale.max() > 1.05 * token_scale.min()",
       "unnormalised tokens differ in scale (max / min)",
       "token_scale.max().item() / token_scale.min().item()", ">", 1.05),
    _c("03", "assert ratio_random.mean() > 1.5", "padding random batches wastes scores",
       "ratio_random.mean().item()", ">", 1.5),
    _c("03", "ratio_bucketed < 1.2", "bucketed batches pad little", "ratio_bucketed", "<", 1.2),
    _c("04", "assert losses[-1] < losses[0] / 20", "the reverse task's loss falls 20-fold",
       "losses[-1] / losses[0]", "<", 1 / 20),
    _c("04", "assert accuracy >= (", "learns to reverse held-out strings (exact match)",
       "accuracy", ">=", "0.8 if QUICK else 0.9"),
    _c("04", "assert hits / total > (", "cross-attention finds the mirrored token",
       "hits / total", ">", "0.75 if QUICK else 0.8"),
    _c("04", "assert sum(cheat_losses[-20:]) / 20 < 0.1", "a leaky decoder's loss collapses",
       "sum(cheat_losses[-20:]) / 20", "<", 0.1),
    _c("04", "assert cheat_accuracy < 0.1", "... yet it reverses almost nothing",
       "cheat_accuracy", "<", 0.1),
    _c("05", 'assert ratio["decoder (causal)"] > 1.7', "padding a causal decoder wastes scores",
       'ratio["decoder (causal)"]', ">", 1.7),
    _c("05", 'assert ratio["decoder (causal)"] > 1.5 * padded_most',
       "... far more than bucketing leaves of the other graphs' padding (ratio of the ratios)",
       'ratio["decoder (causal)"] / padded_most', ">", 1.5),
    _c("05", "assert at_lr > 0.9", "Adam's first step moves weights by the learning rate",
       "at_lr", ">", 0.9),
    _c("05", "assert last_nll < first_nll * (", "training halves the NLL (cuts 40% in quick)",
       "last_nll / first_nll", "<", "0.6 if QUICK else 0.5"),
    _c("05", "assert averaged_nll < sum(snapshot_nll)",
       "the average beats the mean snapshot (NLL difference)",
       "averaged_nll - sum(snapshot_nll) / len(snapshot_nll)", "<", 0),
    _c("05", "assert bleu >= (6 if QUICK else 12)", "a few minutes give test BLEU (tok-lc)",
       "bleu", ">=", "6 if QUICK else 12"),
    _c("05", "assert differ and", "greedy and beam differ somewhere (sentences of 200)",
       "len(differ)", ">", 0),
    _c("05", "min(bleu_k.values()) > bleu - 5", "greedy and beam both translate (BLEU - test)",
       "min(bleu_k.values()) - bleu", ">", -5),
    _c("05", "assert p_g[split] < 0.6", "the model hesitates where greedy and beam part",
       "p_g[split].item()", "<", 0.6),
    _c("05", "assert peak > 2", "cross-attention is peaked (x uniform)", "peak", ">", 2),
    _c("05", "assert (untrained_stats[..., 0] > 0.9).all()", "untrained heads are near uniform",
       "untrained_stats[..., 0].min().item()", ">", 0.9),
    _c("05", "assert (sharpened > 0.03).all()", "training sharpens every head",
       "sharpened.min().item()", ">", 0.03),
    _c("05", "trained_stats[..., 0].max() - trained_stats[..., 0].min() > 0.05",
       "... and not equally (entropy spread)",
       "(trained_stats[..., 0].max() - trained_stats[..., 0].min()).item()", ">", 0.05),
    _c("05", "assert chrf > chrf_copy + 10", "your own sentence is translated (chrF gain)",
       "chrf - chrf_copy", ">", 10),
    _c("05", "assert with_buckets > without", "bucketing raises the real fraction",
       "with_buckets - without", ">", 0),
    _c("06", 't["complete"] > 4 * t["window (w=2)"]', "complete / window time at the longest n",
       't["complete"] / t["window (w=2)"]', ">", 4),
    _c("06", 't["complete"] > 4 * t["hierarchical (w=2)"]',
       "complete / hierarchical time at the longest n",
       't["complete"] / t["hierarchical (w=2)"]', ">", 4),
    _c("06", 'assert t["dense"] < t["complete"] / 4', "complete graph / fused dense time",
       't["complete"] / t["dense"]', ">", 4),
    _c("06", 'assert t["window (w=2)"] < t["dense"]', "dense / window time at the longest n",
       't["dense"] / t["window (w=2)"]', ">", 1),
    _c("06", 'assert said_yes["window (w=2)"]["far"] < 0.5', "the window model is blind far away",
       'said_yes["window (w=2)"]["far"]', "<", 0.5),
    _c("06", 'assert said_yes["complete"]["far"] > 0.8', "the complete graph sees far copies",
       'said_yes["complete"]["far"]', ">", 0.8),
    _c("06", 'assert accuracy["window (w=2)"] <= ceiling + 0.02',
       "the window model stays under its ceiling (accuracy - ceiling)",
       'accuracy["window (w=2)"] - ceiling', "<=", 0.02),
    _c("06", 'assert accuracy["complete"] > ceiling + 0.1',
       "the complete graph passes the ceiling (accuracy - ceiling)",
       'accuracy["complete"] - ceiling', ">", 0.1),
    _c("06", 'assert accuracy["hierarchical (w=2)"] > ceiling',
       "span nodes pass the ceiling (accuracy - ceiling)",
       'accuracy["hierarchical (w=2)"] - ceiling', ">", 0, modes=("default",)),
    _c("06", 'assert accuracy["complete"] >= 0.9', "the complete graph solves the task",
       'accuracy["complete"]', ">=", 0.9),
    _c("06", 'assert accuracy["window (w=2)"] < majority + 0.1',
       "the window model barely beats a constant (accuracy - majority)",
       'accuracy["window (w=2)"] - majority', "<", 0.1),
    _c("06", 'assert accuracy["hierarchical (w=2)"] >= accuracy["window (w=2)"] + (',
       "span nodes beat the window (accuracy gain)",
       'accuracy["hierarchical (w=2)"] - accuracy["window (w=2)"]', ">=",
       "0.08 if QUICK else 0.15"),
    # lesson 08's asserts on the live default model (repro/models/default.pt): shares,
    # importance, greedy BLEU with a head off; an identity (the tracker, the runner-up) is
    # measured by the gap that keeps the ranking as it is. Its asserts on files do not vary.
    _live("assert previous_share[tracker] > 5 * uniform_share",
          "a head tracks the previous token (its share / the uniform head's)",
          "previous_share[tracker].item() / uniform_share", ">", 5),
    _live("assert next_share.max() < 0.5 * previous_share[tracker]",
          "no head tracks the next token (largest next share / the tracker's previous share)",
          "next_share.max().item() / previous_share[tracker].item()", "<", 0.5),
    _live("assert any(layer == tracker[0] for layer, _ in right_leaners)",
          "a head of the tracker's layer leans right "
          "(next share - max(previous, 2 x uniform), best)",
          "(next_share[tracker[0]] - previous_share[tracker[0]].clamp(min=2 * uniform_share))"
          ".max().item()", ">", 0),
    _live("assert max(0.5, 5 * uniform_share) < back_one < 0.9",
          "the previous token is the tracker's strongest in-edge for most tokens "
          "(share - max(0.5, 5 x uniform))",
          "back_one - max(0.5, 5 * uniform_share)", ">", 0),
    _live("assert max(0.5, 5 * uniform_share) < back_one < 0.9",
          "... short of a positional head's 90% (share)", "back_one", "<", 0.9),
    _live("assert most_important == tracker",
          "the tracker is the most important encoder head (its importance / the largest other)",
          "importance_200[tracker].item()"
          " / importance_200.masked_fill(is_tracker, -math.inf).max().item()", ">", 1),
    _live("assert importance_200[tracker] > 1.4 * importance_200[runner_up]",
          "the tracker is well ahead of the runner-up (importance ratio)",
          "importance_200[tracker].item() / importance_200[runner_up].item()", ">", 1.4),
    _live("assert importance_200[tracker] > 10 * importance_200.median()",
          "the tracker raises the loss many times as much as the median head (ratio)",
          "importance_200[tracker].item() / importance_200.median().item()", ">", 10),
    _live("assert two_back_share[runner_up] > previous_share[runner_up] > 2.5 * uniform_share",
          "the runner-up looks further back (two back / previous share)",
          "two_back_share[runner_up].item() / previous_share[runner_up].item()", ">", 1),
    _live("assert two_back_share[runner_up] > previous_share[runner_up] > 2.5 * uniform_share",
          "... and back (its previous share / the uniform head's)",
          "previous_share[runner_up].item() / uniform_share", ">", 2.5),
    _live("assert (head_of(section_1[0]), head_of(section_1[1])) == (tracker, runner_up)",
          "the runner-up stays Section 1's (second / third importance)",
          _ratio_of_ranks("importance_200", 2), ">", 1),
    _live("assert torch.allclose(weights, tracker_weights[in_example], atol=1e-5)",
          "the viewer draws the hook's weights (largest difference)",
          "(weights - tracker_weights[in_example]).abs().max().item()", "<", 1e-5),
    _live("assert bleu_drop[tracker] > 1 and",
          "greedy BLEU falls without the tracker (BLEU drop)", "bleu_drop[tracker].item()", ">", 1),
    _live("bleu_drop[tracker] > 2 * other_drops.abs().max()",
          "... twice as far as any other head moves it (ratio)",
          "bleu_drop[tracker].item() / other_drops.abs().max().item()", ">", 2),
    _live("assert same == (layer <= tracker[0])",
          "the layers above the tracker hear something else (smallest largest weight change)",
          'min((pruned_view.graphs["enc"].weights[k] - view.graphs["enc"].weights[k]).abs().max()'
          ".item() for k in range(tracker[0] + 1, n_layers))", ">", 0),
    _live("assert kept_last == lean_back",
          "the three heads leaning back most stay the three (third / fourth previous share)",
          _ratio_of_ranks("previous_share", 3), ">", 1),
    _live("assert set(order[-2:]) == top(importance_200, 2) == {tracker, runner_up}",
          "the two heads pruning keeps last are the two most important (second / third)",
          _ratio_of_ranks("importance_200", 2), ">", 1),
    _live("assert rank(importance_200, third) > n_layers * n_heads / 2",
          "the third head leaning back is in importance's lower half (rank of 16)",
          "rank(importance_200, third)", ">", 8),
    _live('assert lean["full"][0] == tracker',
          "the tracker is the head leaning back most (first / second previous share)",
          _ratio_of_ranks("previous_share", 1), ">", 1),
    _live("assert bleu_drop[riser] < 0 < importance_200[riser]",
          "removing some head raises greedy BLEU (largest BLEU drop, negative: a rise)",
          "bleu_drop[riser].item()", "<", 0),
    _live("assert bleu_drop[riser] < 0 < importance_200[riser]",
          "... yet that head raises the loss (its importance)",
          "importance_200[riser].item()", ">", 0),
    _c("tests", "tests/test_toy.py::test_reverse_task_learned_on_held_out_strings",
       "the toy model learns to reverse (exact match)", "exact_match", ">=", 0.93,
       modes=("default",)),
    _c("tests", "tests/test_toy.py::test_reverse_task_learned_on_held_out_strings",
       "... its loss falls tenfold (last / first)", "loss_ratio", "<", 0.1, modes=("default",)),
    _c("tests", "tests/test_decoding.py::test_greedy_stops_at_eos_in_a_trained_model",
       "a trained model's outputs end with EOS (of 50)", "ended", ">=", 45, modes=("default",)),
]


def record_cell(checks: list[Check], path: Path) -> str:
    """Source of a last notebook cell that writes each check's value to ``path`` (JSON), keyed
    by the value's expression (a threshold may change; the value it is checked on stays)."""
    spec = sorted({c.value for c in checks})
    return f"""import json as _json
_values = {{}}
for _value in {spec!r}:
    try:
        _values[_value] = float(eval(_value))
    except Exception as _exc:  # the lesson failed before it computed this value
        _values[_value] = repr(_exc)
with open({str(path)!r}, "w") as _f:
    _json.dump(_values, _f)
"""


def bound(check: Check, mode: str) -> float:
    """The check's threshold in ``mode`` (``QUICK`` is true in the quick mode)."""
    return float(eval(check.bound, {"QUICK": mode == "quick"}))


def _lesson_source(lesson: str) -> Path:
    return next(HERE.glob(f"{lesson}_*.py"))


def where(check: Check) -> str:
    """``file:line`` of the check's assert, or the test's node id."""
    if check.lesson == "tests":
        return check.source
    path = _lesson_source(check.lesson)
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if check.source in line:
            return f"{path.relative_to(ROOT)}:{number}"
    raise LookupError(f"{path.name} has no line with {check.source!r}: update notebooks/audit.py")


def _run_lesson(lesson: str, mode: str, path: str, seed: int) -> dict[str, object]:
    """Execute one lesson under one setting; returns its checks' [value, bound] or errors."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "values.json"
        env = {**os.environ, **MODES[mode], **PATHS[path], "DGLT_SEED": str(seed),
               "DGLT_CHECKPOINT": "none"}  # lesson 5 trains its own model, not a runs/ one
        proc = subprocess.run(
            [sys.executable, str(HERE / "run_notebooks.py"), lesson, "--record", str(out)],
            env=env, capture_output=True, text=True)
        if not out.exists():
            return {"error": proc.stderr[-2000:]}
        values = json.loads(out.read_text())
        if proc.returncode:
            values["error"] = proc.stderr.strip().splitlines()[-1][:500]
        return values


def _run_tests(path: str, seed: int) -> dict[str, object]:
    """Run the unit tests with trained thresholds; their recorded values by check source."""
    ids = sorted({c.source for c in CHECKS if c.lesson == "tests"})
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        env = {**os.environ, **PATHS[path], "DGLT_SEED": str(seed)}
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"--junitxml={xml}", *ids], cwd=ROOT, env=env, capture_output=True)
        values: dict[str, object] = {}
        for case in ET.parse(xml).getroot().iter("testcase"):
            node = f"tests/{case.get('classname').split('.')[-1]}.py::{case.get('name')}"
            for prop in case.iter("property"):
                values[f"{node}#{prop.get('name')}"] = float(prop.get("value"))
        out: dict[str, object] = {}
        for c in CHECKS:
            if c.lesson == "tests":
                key = f"{c.source}#{c.value}"
                out[key] = values.get(key, "not recorded")
        return out


def _complete(values: dict | None) -> bool:
    """Whether a recorded run holds every value (a failing assert can stop a cell before it
    computes the values after it: such a run is measured again)."""
    return values is not None and all(isinstance(v, int | float)
                                      for k, v in values.items() if k != "error")


def measure(lessons: list[str], modes: list[str], paths: list[str], seeds: list[int],
            jobs: int, results: dict) -> dict:
    """Run every missing (lesson, mode, path, seed) and store the values into ``results``."""
    tasks = []
    for lesson in lessons:
        # only the modes the lesson's checks are about; one seed where the lesson reads none
        used = {m for c in CHECKS if c.lesson == lesson for m in c.modes}
        for mode in (m for m in modes if m in used):
            for path in paths:
                for seed in seeds[:1] if lesson in UNSEEDED else seeds:
                    key = f"{lesson}/{mode}/{path}/{seed}"
                    if not _complete(results.get(key)):
                        tasks.append((key, lesson, mode, path, seed))

    def one(task):
        key, lesson, mode, path, seed = task
        start = time.perf_counter()
        values = (_run_tests(path, seed) if lesson == "tests"
                  else _run_lesson(lesson, mode, path, seed))
        return key, values, time.perf_counter() - start

    print(f"{len(tasks)} runs to make, {jobs} at a time", flush=True)
    with ThreadPoolExecutor(jobs) as pool:
        for key, values, seconds in pool.map(one, tasks):
            results[key] = values
            _save(results)
            error = f"  {values['error']}" if "error" in values else ""
            print(f"{key:<32s} {seconds:6.0f} s{error}", flush=True)
    return results


def _save(results: dict) -> None:
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(sorted(results.items())), indent=1) + "\n")
    tmp.replace(RESULTS)


def summarise(check: Check, mode: str, results: dict) -> dict | None:
    """Worst case of one check in one mode over every recorded seed and path (None: the
    check was not run in that mode)."""
    key = f"{check.source}#{check.value}" if check.lesson == "tests" else check.value
    found = [(run.split("/")[2], int(run.split("/")[3]), values.get(key, "not recorded"))
             for run, values in results.items()
             if run.startswith(f"{check.lesson}/{mode}/") and mode in check.modes]
    if not found:
        return None
    limit = bound(check, mode)
    measured = [(check.margin(v, limit), v, p, s) for p, s, v in found
                if isinstance(v, int | float)]
    values = [v for _, v, _, _ in measured]
    return {
        "runs": len(found), "missing": len(found) - len(measured), "bound": limit,
        "paths": sorted({p for p, _, _ in found}), "seeds": sorted({s for _, s, _ in found}),
        "min": min(values, default=math.nan), "max": max(values, default=math.nan),
        "worst": min(measured, default=None),
        "failed": sum(not check.holds(v, limit) for v in values),
    }


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def table(results: dict) -> str:
    """The audit table (markdown): one row per check and mode."""
    rows = ["| where | claim | mode | check | measured (min .. max) | worst case | margin | "
            "fails |", "|---|---|---|---|---|---|---|---|"]
    def order(check: Check) -> tuple[str, int]:
        file, _, line = where(check).partition(":")
        return file, int(line) if line.isdigit() else 0

    for check in sorted(CHECKS, key=order):
        for mode in check.modes:
            s = summarise(check, mode, results)
            if s is None:
                rows.append(f"| `{where(check)}` | {check.claim} | {mode} | {check.op} "
                            f"{_fmt(bound(check, mode))} | not measured yet | | | |")
                continue
            if s["worst"] is None:
                rows.append(f"| `{where(check)}` | {check.claim} | {mode} | {check.op} "
                            f"{_fmt(s['bound'])} | never reached | | | |")
                continue
            margin, value, path, seed = s["worst"]
            rows.append(
                f"| `{where(check)}` | {check.claim} | {mode} | {check.op} {_fmt(s['bound'])} | "
                f"{_fmt(s['min'])} .. {_fmt(s['max'])} | {_fmt(value)} (seed {seed}, {path}) | "
                f"{_fmt(margin)} | {s['failed']} of {s['runs'] - s['missing']}"
                + (f", {s['missing']} not reached" if s["missing"] else "") + " |")
    runs = {tuple(k.split("/")[2:]) for k in results}
    paths = sorted({p for p, _ in runs})
    seeds = sorted({int(s) for _, s in runs})
    head = (f"Measured by `python notebooks/audit.py` over seeds {', '.join(map(str, seeds))} and "
            f"CPU code paths {', '.join(paths)} (see `PATHS` in `notebooks/audit.py`); "
            "values in `notebooks/audit.json`. *Margin*: distance of the worst case from the "
            "threshold, on the passing side.")
    return head + "\n\n" + "\n".join(rows)


def write_table(results: dict, readme: Path = README) -> None:
    text = readme.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    readme.write_text(text[:start] + "\n" + table(results) + "\n" + text[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    lessons = sorted({c.lesson for c in CHECKS})
    parser.add_argument("--lessons", nargs="+", default=lessons, choices=lessons)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--paths", nargs="+", default=["native", "default", "mkl-compatible"],
                        choices=list(PATHS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (each one thread)")
    parser.add_argument("--fresh", action="store_true", help="forget the recorded values")
    parser.add_argument("--table", action="store_true", help="only rewrite the README table")
    args = parser.parse_args(argv)

    results = {} if args.fresh or not RESULTS.exists() else json.loads(RESULTS.read_text())
    if not args.table:
        measure(args.lessons, args.modes, args.paths, args.seeds, args.jobs, results)
    write_table(results)
    failing = [(where(c), m) for c in CHECKS for m in c.modes
               if (s := summarise(c, m, results)) and (s["failed"] or s["missing"])]
    for place, mode in failing:
        print(f"fails or not reached: {place} ({mode})", file=sys.stderr)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
