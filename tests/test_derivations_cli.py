"""Derivations (parts 1 and 3) end to end, through `hwgen grade` and `hwgen check`.

Every submission here has the numeric answers right (40 points), so its score shows what its
derivations earned. One `hwgen grade` run grades all the right, wrong, ill-formed and circular
forms at once (module fixture); each hostile file is graded in a run of its own, and once more
by the real console command in a subprocess.

Safety is structural (length, nesting and size limits in grader/expr.py; no evaluator of
Python anywhere), so nothing here asserts on wall-clock time.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import cli
from grader.derivations import LABELS, REFERENCE
from grader.params import HW2, answers_to_json, solve_one

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "submissions"
RIGHT_ANSWERS = answers_to_json(solve_one(HW2))
POINTS = {"u": 2.5, "h": 2.5, "z": 2.5, "o": 2.5, "grad_w": 5.0, "grad_v": 5.0}  # grader/rubric.toml
PART_OF = {"u": "1", "h": "1", "z": "1", "o": "1", "grad_w": "3", "grad_v": "3"}


def run(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def submission(student_id: str, derivations: dict) -> str:
    return json.dumps({"student_id": student_id, "answers": RIGHT_ANSWERS, "derivations": derivations})


# --- The forms --------------------------------------------------------------------------

# At least five ways a student might write each right answer: summed or expanded, piecewise
# or with ELU, in the intermediates or fully in the givens.
EQUIVALENT_FORMS = {
    "u": [
        "sum(v[j,i] * x[i], i)",
        "v[j,1]*x[1] + v[j,2]*x[2] + v[j,3]*x[3]",
        "sum(x[m] * v[j,m], m)",
        "SUM(V[J,I]*X[I], I)",
        "x[3]*v[j,3] + (x[1]*v[j,1] + x[2]*v[j,2])",
        "sum(2*v[j,i]*x[i], i) / 2",
    ],
    "h": [
        "ELU(u[j])",
        "where(u[j] >= 0, u[j], exp(u[j]) - 1)",
        "ELU(sum(v[j,i]*x[i], i))",
        "max(u[j], 0) + min(exp(u[j]) - 1, 0)",
        "where(u[j] < 0, e^u[j] - 1, u[j])",
        "where(sum(v[j,i]*x[i], i) > 0, sum(v[j,i]*x[i], i), e**sum(v[j,i]*x[i], i) - 1)",
    ],
    "z": [
        "sum(w[k,j] * h[j], j)",
        "w[k,1]*h[1] + w[k,2]*h[2] + w[k,3]*h[3] + w[k,4]*h[4]",
        "sum(h[m] * w[k,m], m)",
        "sum(w[k,j] * ELU(u[j]), j)",
        "sum(w[k,j] * where(u[j] >= 0, u[j], exp(u[j]) - 1), j)",
        "sum(w[k,j] * ELU(sum(v[j,i] * x[i], i)), j)",
    ],
    "o": [
        "exp(z[k]) / sum(exp(z[m]), m)",
        "exp(z[k])/(exp(z[1])+exp(z[2]))",
        "e^z[k] / (e^z[1] + e^z[2])",
        "1 / sum(exp(z[m] - z[k]), m)",
        "exp(z[k] - log(sum(exp(z[m]), m)))",
        "exp(z[k]) / sum(exp(z[k]), k)",
        "exp(sum(w[k,j]*h[j], j)) / sum(exp(sum(w[m,j]*h[j], j)), m)",
    ],
    "grad_w": [
        "(o[k] - t[k]) * h[j]",
        "o[k]*h[j] - t[k]*h[j]",
        "h[j] * (o[k] - ostar[k])",
        "-(t[k] - o[k]) * h[j]",
        "(exp(z[k]) / sum(exp(z[m]), m) - t[k]) * ELU(u[j])",
        "(o[k] - t[k]) * where(u[j] >= 0, u[j], exp(u[j]) - 1)",
    ],
    "grad_v": [
        "sum((o[k] - t[k]) * w[k,j], k) * dELU(u[j]) * x[i]",
        "sum((o[k] - t[k]) * w[k,j] * dELU(u[j]) * x[i], k)",
        "((o[1]-t[1])*w[1,j] + (o[2]-t[2])*w[2,j]) * where(u[j] >= 0, 1, exp(u[j])) * x[i]",
        "sum((o[k] - t[k]) * w[k,j], k) * where(u[j] > 0, x[i], exp(u[j]) * x[i])",
        "sum((o[k] - t[k]) * w[k,j], k) * (min(h[j], 0) + 1) * x[i]",
        "sum(o[k]*w[k,j], k)*dELU(u[j])*x[i] - sum(t[k]*w[k,j], k)*dELU(u[j])*x[i]",
        # in the givens only
        "x[i] * dELU(sum(v[j,m]*x[m], m)) * sum(w[k,j] * (exp(sum(w[k,n]*ELU(sum(v[n,a]*x[a], a)), n)) "
        "/ sum(exp(sum(w[q,n]*ELU(sum(v[n,a]*x[a], a)), n)), q) - t[k]), k)",
    ],
    "loss": [
        "-sum(t[k] * log(o[k]), k)",
        "-log(sum(t[k] * o[k], k))",
        "-(t[1]*ln(o[1]) + t[2]*ln(o[2]))",
        "-sum(t[k] * (z[k] - log(sum(exp(z[m]), m))), k)",
        "sum(t[k] * log(1 / o[k]), k)",
    ],
}
ROUNDS = max(len(forms) for forms in EQUIVALENT_FORMS.values())
FORM_CASES = [(key, n) for key, forms in EQUIVALENT_FORMS.items() for n in range(len(forms))]

# Wrong answers that parse: (key, text, the catalogued mistake it is, or None).
WRONG_FORMS = [
    ("u", "sum(v[j,i], i) * sum(x[i], i)", None),
    ("u", "-sum(v[j,i] * x[i], i)", None),
    ("h", "where(u[j] >= 0, u[j], 0)", "relu-for-elu"),
    ("h", "max(u[j], 0)", "relu-for-elu"),
    ("h", "where(u[j] >= 0, u[j], exp(u[j]))", None),
    ("h", "sigmoid(u[j])", None),
    ("z", "sum(w[k,j] * u[j], j)", None),
    ("z", "sum(w[k,j] * max(u[j], 0), j)", "relu-for-elu"),
    ("o", "sigmoid(z[k])", "sigmoid-output"),
    ("o", "1 / (1 + exp(-z[k]))", "sigmoid-output"),
    ("o", "exp(z[k])", None),
    ("o", "z[k] / sum(z[m], m)", None),
    ("grad_w", "(t[k] - o[k]) * h[j]", "target-minus-output"),
    ("grad_w", "(o[k] - t[k]) * max(u[j], 0)", "relu-for-elu"),
    ("grad_w", "o[k] * (1 - o[k]) * h[j]", None),
    ("grad_w", "(o[k] - t[k]) * o[k] * (1 - o[k]) * h[j]", None),
    ("grad_w", "(o[k] - t[k]) * u[j]", None),
    ("grad_w", "(o[k] - t[k]) * h[j] * dELU(u[j])", None),
    ("grad_v", "sum((o[k] - t[k]) * w[k,j], k) * x[i]", "elu-derivative-one"),
    ("grad_v", "x[i] * ((o[1]-t[1])*w[1,j] + (o[2]-t[2])*w[2,j])", "elu-derivative-one"),
    ("grad_v", "sum((o[k] - t[k]) * w[k,j], k) * ELU(u[j]) * x[i]", "elu-derivative-expm1"),
    ("grad_v", "sum((o[k] - t[k]) * w[k,j], k) * h[j] * x[i]", "elu-derivative-expm1"),
    ("grad_v", "sum((o[k]-t[k])*w[k,j], k) * where(u[j] >= 0, 1, exp(u[j]) - 1) * x[i]", "elu-derivative-expm1"),
    ("grad_v", "sum((o[k]-t[k])*w[k,j], k) * where(u[j] > 0, 1, 0) * x[i]", "elu-derivative-zero"),
    ("grad_v", "sum((t[k] - o[k]) * w[k,j], k) * dELU(u[j]) * x[i]", "target-minus-output"),
    ("grad_v", "sum((o[k] - t[k]) * o[k] * (1 - o[k]) * w[k,j], k) * dELU(u[j]) * x[i]", None),
    ("grad_v", "sum((o[k] - t[k]) * w[k,j], k) * dELU(h[j]) * x[i]", None),
    ("grad_v", "sum((o[k] - t[k]) * w[k,j], k) * exp(u[j]) * x[i]", None),
    ("grad_v", "sum((o[k] - t[k]) * w[k,j], k) * dELU(u[j]) * v[j,i]", None),
]
NAMED_FORMS = [case for case in WRONG_FORMS if case[2]]
UNNAMED_FORMS = [case for case in WRONG_FORMS if not case[2]]

# Wrong answers refused before evaluation: indices swapped or of the wrong range, a sum
# forgotten or over the wrong letter. (key, text, a phrase of the message.)
ILL_INDEXED_FORMS = [
    ("u", "sum(v[i,j] * x[i], i)", "used both as"),
    ("u", "v[j,i] * x[i]", "bind others with sum"),
    ("u", "sum(v[j,i] * x[i], j)", "bind others with sum"),
    ("z", "sum(w[j,k] * h[j], j)", "used both as"),
    ("z", "w[k,j] * h[j]", "bind others with sum"),
    ("grad_w", "(o[k] - t[k]) * h[k]", "ranges over"),
    ("grad_w", "(o[j] - t[j]) * h[k]", "ranges over"),
    ("grad_v", "sum((o[k] - t[k]) * w[j,k], k) * dELU(u[j]) * x[i]", "used both as"),
    ("grad_v", "(o[k] - t[k]) * w[k,j] * dELU(u[j]) * x[i]", "bind others with sum"),
    ("grad_v", "sum((o[k] - t[k]) * w[k,j], j) * dELU(u[j]) * x[i]", "bind others with sum"),
    ("grad_v", "sum((o[k] - t[k]) * w[k,j], k) * dELU(u[j]) * x[j]", "ranges over"),
]

# True but circular: the quantity itself, or one computed from it.
CIRCULAR_FORMS = [
    ("u", "u[j]"),
    ("u", "where(h[j] >= 0, h[j], log(1 + h[j]))"),
    ("h", "h[j]"),
    ("z", "z[k]"),
    ("z", "log(o[k]) + log(sum(exp(z[m]), m))"),
    ("o", "o[k]"),
]

# Text that does not parse: (key, text, the whole message).
PARSE_ERRORS = [
    ("grad_v", "sum((o[k]-t[k])*w[k,j], k))*dELU(u[j])*x[i]", "grad_v: unexpected ')' at column 27"),
    ("u", "sum(v[j,i] * x[i], i", "u: unexpected end of expression at column 21 (expected ')')"),
    (
        "o",
        "1/(1+exp(z[3-k]-z[k]))",
        "o: '-' at column 13: an index is a single letter or a whole number; arithmetic on indices such as "
        "z[3-k] is not supported (write the terms out with whole numbers, z[1] and z[2])",
    ),
    (
        "u",
        "\\sum_i v_{ji} x_i",
        "u: unexpected character '\\' at column 1; the answer is plain text, not LaTeX: write sum(x[i]^2, i), "
        "not \\sum_i x_i^2",
    ),
    (
        "grad_v",
        "sum((o[k] - t[k]) * w[k,j], k) * ELU'(u[j]) * x[i]",
        "grad_v: unexpected character \"'\" at column 37; primes are not read; write the derivative of ELU as dELU(...)",
    ),
    ("grad_w", "(o[k] \u2212 t[k]) * h[j]", "grad_w: unexpected character U+2212 '\u2212' at column 7; type - instead"),
    (
        "grad_w",
        "(o[k] - o*[k]) * h[j]",
        "grad_w: o* at column 9 is read as o times something; write the target o*_k as t[k] (or ostar[k])",
    ),
    (
        "grad_w",
        "(o[k] - y[k]) * h[j]",
        "grad_w: unknown name 'y' at column 9 (allowed: x, v, w, t, ostar, u, h, z, o, e, exp, log, ln, log10, "
        "ELU, dELU, sigmoid, max, min, sum, where)",
    ),
    ("u", "sum(v[j,i] * x[i], i) + x[4]", "u: index 4 out of range 1..3 for x at column 27"),
    ("h", "h[j] = ELU(u[j])", "h: unexpected character '=' at column 6; give only the formula, without 'name =' in front; "
     "inside where, compare with ==, <= or >="),
]

# The loss derivation is optional and worth no points; a catalogued mistake in it is named.
LOSS_FORMS = [
    ("loss", "-sum(t[k] * log10(o[k]), k)", "log10-loss"),
    ("loss", "-sum(t[k] * log(o[k]), k) / log(10)", "log10-loss"),
    ("loss", "sum(t[k] * log(o[k]), k)", None),
]


def _ids(prefix: str, cases) -> dict:
    return {case: f"{prefix}{n:04d}" for n, case in enumerate(cases)}


EQUIVALENT_IDS = {n: f"202100{n:04d}" for n in range(ROUNDS)}
WRONG_IDS = _ids("202101", WRONG_FORMS)
ILL_INDEXED_IDS = _ids("202102", ILL_INDEXED_FORMS)
CIRCULAR_IDS = _ids("202103", CIRCULAR_FORMS)
PARSE_ERROR_IDS = _ids("202104", PARSE_ERRORS)
LOSS_IDS = _ids("202105", LOSS_FORMS)


def _one_changed(key: str, text: str) -> dict:
    """The reference derivations with one answer replaced."""
    return {**REFERENCE, key: text}


def _all_submissions() -> dict[str, dict]:
    """student id -> derivations, for every case of this module but the hostile ones."""
    out = {}
    for n, student_id in EQUIVALENT_IDS.items():
        out[student_id] = {key: forms[n % len(forms)] for key, forms in EQUIVALENT_FORMS.items()}
    for cases, ids in ((WRONG_FORMS, WRONG_IDS), (ILL_INDEXED_FORMS, ILL_INDEXED_IDS), (LOSS_FORMS, LOSS_IDS)):
        for case in cases:
            out[ids[case]] = _one_changed(case[0], case[1])
    for case in CIRCULAR_FORMS:
        out[CIRCULAR_IDS[case]] = _one_changed(*case)
    for case in PARSE_ERRORS:
        out[PARSE_ERROR_IDS[case]] = _one_changed(case[0], case[1])
    return out


class Graded:
    """One `hwgen grade` run: the records by student id, the feedback and the input files."""

    def __init__(self, folder: Path, out: Path):
        self.folder = folder
        self.out = out
        results = json.loads((out / "results.json").read_text())
        self.records = {record["student_id"]: record for record in results["students"]}

    def feedback(self, student_id: str) -> str:
        return (self.out / "feedback" / f"{student_id}.md").read_text()

    def file(self, student_id: str) -> Path:
        return self.folder / f"{student_id}.json"


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Graded:
    base = tmp_path_factory.mktemp("derivations")
    folder = base / "in"
    folder.mkdir()
    for student_id, derivations in _all_submissions().items():
        (folder / f"{student_id}.json").write_text(submission(student_id, derivations))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(base)  # no manifest.json here: graded against HW#2
        result = run("grade", folder, "--out", base / "out")
    assert result.exit_code == 0, result.output
    return Graded(folder, base / "out")


def _derivation(graded: Graded, student_id: str, key: str) -> dict:
    return graded.records[student_id]["derivations"][key]


# --- Equivalent forms: full credit --------------------------------------------------------


@pytest.mark.parametrize("key, n", FORM_CASES, ids=[f"{key}-{n}" for key, n in FORM_CASES])
def test_every_equivalent_form_is_right(graded, key, n):
    assert _derivation(graded, EQUIVALENT_IDS[n], key) == {"status": "right", "mistake": None, "message": ""}


@pytest.mark.parametrize("n", range(ROUNDS))
def test_a_submission_of_equivalent_forms_scores_60_of_60(graded, n):
    record = graded.records[EQUIVALENT_IDS[n]]
    assert (record["status"], record["score"], record["max_score"]) == ("graded", 60.0, 60.0)


@pytest.mark.parametrize("n", range(ROUNDS))
def test_equivalent_forms_fill_parts_1_and_3(graded, n):
    parts = graded.records[EQUIVALENT_IDS[n]]["parts"]
    assert (parts["1"]["score"], parts["3"]["score"]) == (10.0, 10.0)


@pytest.mark.parametrize("n", range(ROUNDS))
def test_equivalent_forms_name_no_mistake(graded, n):
    assert graded.records[EQUIVALENT_IDS[n]]["misconceptions"] == []


# --- Wrong forms: no credit, the catalogued ones named ----------------------------------------


def _expected_parts(key: str) -> dict[str, float]:
    parts = {"1": 10.0, "3": 10.0}
    parts[PART_OF[key]] -= POINTS[key]
    return parts


WRONG_AND_REFUSED = [
    (case[0], case[1], ids[case])
    for cases, ids in (
        (WRONG_FORMS, WRONG_IDS),
        (ILL_INDEXED_FORMS, ILL_INDEXED_IDS),
        (CIRCULAR_FORMS, CIRCULAR_IDS),
        (PARSE_ERRORS, PARSE_ERROR_IDS),
    )
    for case in cases
]


@pytest.mark.parametrize("key, text, student_id", WRONG_AND_REFUSED, ids=[f"{k}:{t}" for k, t, _ in WRONG_AND_REFUSED])
def test_a_wrong_or_refused_derivation_earns_nothing(graded, key, text, student_id):
    parts = graded.records[student_id]["parts"]
    assert {"1": parts["1"]["score"], "3": parts["3"]["score"]} == _expected_parts(key)


@pytest.mark.parametrize("key, text, student_id", WRONG_AND_REFUSED, ids=[f"{k}:{t}" for k, t, _ in WRONG_AND_REFUSED])
def test_the_rest_of_the_submission_is_still_graded(graded, key, text, student_id):
    record = graded.records[student_id]
    assert (record["status"], record["score"]) == ("graded", 60.0 - POINTS[key])


@pytest.mark.parametrize("key, text, mistake", WRONG_FORMS, ids=[f"{k}:{t}" for k, t, _ in WRONG_FORMS])
def test_a_wrong_form_that_parses_is_wrong_with_a_one_line_message(graded, key, text, mistake):
    result = _derivation(graded, WRONG_IDS[(key, text, mistake)], key)
    assert result["status"] == "wrong" and result["message"] and "\n" not in result["message"]


@pytest.mark.parametrize("key, text, mistake", NAMED_FORMS, ids=[f"{k}:{t}" for k, t, _ in NAMED_FORMS])
def test_a_catalogued_mistake_is_named_on_its_derivation(graded, key, text, mistake):
    assert _derivation(graded, WRONG_IDS[(key, text, mistake)], key)["mistake"] == mistake


@pytest.mark.parametrize("key, text, mistake", NAMED_FORMS, ids=[f"{k}:{t}" for k, t, _ in NAMED_FORMS])
def test_a_catalogued_mistake_is_listed_in_misconceptions(graded, key, text, mistake):
    assert graded.records[WRONG_IDS[(key, text, mistake)]]["misconceptions"] == [mistake]


@pytest.mark.parametrize("key, text, mistake", NAMED_FORMS, ids=[f"{k}:{t}" for k, t, _ in NAMED_FORMS])
def test_a_catalogued_mistake_is_named_in_the_feedback(graded, key, text, mistake):
    feedback = graded.feedback(WRONG_IDS[(key, text, mistake)])
    assert f"- **{mistake}** (the derivation of " in feedback and f": wrong ({mistake})." in feedback


@pytest.mark.parametrize("key, text, mistake", UNNAMED_FORMS, ids=[f"{k}:{t}" for k, t, _ in UNNAMED_FORMS])
def test_an_uncatalogued_wrong_form_names_no_mistake(graded, key, text, mistake):
    record = graded.records[WRONG_IDS[(key, text, mistake)]]
    assert (record["misconceptions"], record["derivations"][key]["mistake"]) == ([], None)


@pytest.mark.parametrize("key, text, phrase", ILL_INDEXED_FORMS, ids=[f"{k}:{t}" for k, t, _ in ILL_INDEXED_FORMS])
def test_swapped_indices_and_forgotten_sums_are_refused_naming_the_index(graded, key, text, phrase):
    result = _derivation(graded, ILL_INDEXED_IDS[(key, text, phrase)], key)
    assert result["status"] == "invalid" and result["message"].startswith(f"{key}: index '") and phrase in result["message"]


@pytest.mark.parametrize("key, text", CIRCULAR_FORMS, ids=[f"{k}:{t}" for k, t in CIRCULAR_FORMS])
def test_a_circular_formula_is_refused_saying_what_it_may_use(graded, key, text):
    result = _derivation(graded, CIRCULAR_IDS[(key, text)], key)
    assert result["status"] == "invalid" and "cannot be used here; write" in result["message"]


@pytest.mark.parametrize("key, text, mistake", LOSS_FORMS, ids=[f"{k}:{t}" for k, t, _ in LOSS_FORMS])
def test_a_wrong_loss_derivation_is_named_when_catalogued(graded, key, text, mistake):
    record = graded.records[LOSS_IDS[(key, text, mistake)]]
    assert (record["derivations"]["loss"]["mistake"], record["misconceptions"]) == (mistake, [mistake] if mistake else [])


@pytest.mark.parametrize("key, text, mistake", LOSS_FORMS, ids=[f"{k}:{t}" for k, t, _ in LOSS_FORMS])
def test_the_loss_derivation_costs_no_points(graded, key, text, mistake):
    assert graded.records[LOSS_IDS[(key, text, mistake)]]["score"] == 60.0


# --- Parse errors: reported with the column, in grade and in check --------------------------


@pytest.mark.parametrize("key, text, message", PARSE_ERRORS, ids=[f"{k}:{t}" for k, t, _ in PARSE_ERRORS])
def test_a_parse_error_is_reported_with_its_column(graded, key, text, message):
    assert _derivation(graded, PARSE_ERROR_IDS[(key, text, message)], key) == {"status": "invalid", "mistake": None, "message": message}


@pytest.mark.parametrize("key, text, message", PARSE_ERRORS, ids=[f"{k}:{t}" for k, t, _ in PARSE_ERRORS])
def test_a_parse_error_is_in_the_feedback_with_its_column(graded, key, text, message):
    feedback = graded.feedback(PARSE_ERROR_IDS[(key, text, message)])
    (line,) = [line for line in feedback.splitlines() if line.startswith(f"- {LABELS[key]}: invalid. ")]
    assert re.search(r"column \d+", message)[0] in line


@pytest.mark.parametrize("key, text, message", PARSE_ERRORS, ids=[f"{k}:{t}" for k, t, _ in PARSE_ERRORS])
def test_check_reports_a_parse_error_on_one_line(graded, key, text, message):
    path = graded.file(PARSE_ERROR_IDS[(key, text, message)])
    result = run("check", path)
    assert (result.exit_code, result.stdout.splitlines()) == (1, [f"{path}: error: derivations.{message}", f"{path}: not well-formed (1 problem)"])


@pytest.mark.parametrize("key, text", CIRCULAR_FORMS, ids=[f"{k}:{t}" for k, t in CIRCULAR_FORMS])
def test_check_reports_a_circular_formula(graded, key, text):
    result = run("check", graded.file(CIRCULAR_IDS[(key, text)]))
    assert result.exit_code == 1 and f"error: derivations.{key}: " in result.stdout


@pytest.mark.parametrize("case", [*WRONG_FORMS, *LOSS_FORMS], ids=[f"{k}:{t}" for k, t, _ in [*WRONG_FORMS, *LOSS_FORMS]])
def test_check_accepts_a_wrong_answer_that_is_well_formed(graded, case):
    ids = WRONG_IDS if case in WRONG_IDS else LOSS_IDS
    result = run("check", graded.file(ids[case]))
    assert result.exit_code == 0 and result.stdout.endswith("well-formed; 53 of 53 answer entries given\n")


@pytest.mark.parametrize("n", range(ROUNDS))
def test_check_accepts_equivalent_forms(graded, n):
    assert run("check", graded.file(EQUIVALENT_IDS[n])).exit_code == 0


# --- Hostile input ------------------------------------------------------------------------

def _nested_sums(depth: int) -> str:
    text = "x[i]"
    for _ in range(depth):
        text = f"sum({text}, i)"
    return text


def _balanced_sum(leaf: str, count: int) -> str:
    items = [leaf] * count
    while len(items) > 1:
        items = [f"({items[n]} + {items[n + 1]})" if n + 1 < len(items) else items[n] for n in range(0, len(items), 2)]
    return items[0]


# name -> the derivations block (a JSON value), or raw file text when a str. MARKER is replaced
# by a path in the test's folder: the file must never appear.
HOSTILE = {
    "python_code": {
        "u": "__import__('os').system('touch MARKER')",
        "h": "eval(\"__import__('os').system('touch MARKER')\")",
        "z": "().__class__.__bases__[0].__subclasses__()",
        "o": "exec('import os')",
        "grad_w": "lambda: open('MARKER', 'w')",
        "grad_v": "open('/etc/passwd').read()",
    },
    "open_parentheses": {key: "(" * 100_000 for key in REFERENCE},
    "huge_powers": {"u": "9**9**9**9", "h": "9^9^9^9", "z": "(9**9)**(9**9)", "o": "2**-9**9", "grad_w": "10**1000", "grad_v": "exp(exp(exp(exp(exp(1000)))))"},
    "string_of_900_kb": {**REFERENCE, "grad_v": "x" * 900_000},
    "string_of_1_mb": {**REFERENCE, "grad_v": "(" * 1_000_000},
    "nested_sums": {
        **REFERENCE,
        "u": _nested_sums(200),
        "h": "sum(sum(sum(sum(sum(v[j,i], i), i), i), i), i)",
        "grad_v": "sum(sum(sum(sum(v[a,i]*v[b,i]*v[c,i]*v[d,i], a), b), c), d) * x[i] * v[j,i] * sum(x[m], m)",
    },
    "largest_evaluation": {**REFERENCE, "grad_v": f"sum(sum(sum(sum({_balanced_sum('(v[j,i]*v[a,i]*v[b,i]*v[c,i]*v[d,i])', 45)}, a), b), c), d)"},
    "long_chains": {
        "u": "+".join(["x[1]"] * 600),
        "h": "-" * 1999 + "1",
        "z": "u[1]" + "^u[1]" * 398,
        "o": "1" + "*1" * 999,
        "grad_w": "exp(" * 64 + "h[j]" + ")" * 64,
        "grad_v": "x[i]" + "/x[i]" * 100,
    },
    "nul_bytes": {**REFERENCE, "u": "sum(v[j,i]*x[i],\u0000 i)", "h": "\u0000", "grad_v": "x[i]\u0000\u0000"},
    "lone_surrogate": None,  # raw text, below
    "not_strings": {"u": 5, "h": [1, 2], "z": {"text": "sum(w[k,j]*h[j], j)"}, "o": True, "grad_w": 1.5e300, "grad_v": [[["sum"]]], "loss": False},
    "unicode_and_latex": {
        "u": "\u2211 v[j,i] x[i]",
        "h": "ELU(u[j])\u202e",
        "z": "\U0001d467",
        "o": "e^{z_k} / \\sum_m e^{z_m}",
        "grad_w": "(o[k]\u2212t[k])\u00b7h[j]",
        "grad_v": "\\sum_k (o_k - t_k) w_{kj} ELU'(u_j) x_i",
    },
    "derivations_a_string": "sum(v[j,i]*x[i], i)",
    "derivations_a_list": ["sum(v[j,i]*x[i], i)"],
}
RAW_HOSTILE = {
    "lone_surrogate": submission("2022000009", {**REFERENCE, "h": "PLACEHOLDER"}).replace("PLACEHOLDER", "\\ud800ELU(u[j])"),
    "over_1_mib": submission("2022000099", {**REFERENCE, "grad_v": "x" * (1024 * 1024)}),
    "lone_surrogate_in_the_id": submission("PLACEHOLDER", REFERENCE).replace("PLACEHOLDER", "2022\\ud800"),
    "lone_surrogate_in_a_key": submission("2022000009", {**REFERENCE, "PLACEHOLDER": "x"}).replace("PLACEHOLDER", "\\udc80"),
    "lone_surrogate_in_a_top_level_key": submission("2022000009", REFERENCE)[:-1] + ', "\\ud800": 1}',
}
HOSTILE_NAMES = sorted([name for name in HOSTILE if name not in RAW_HOSTILE] + list(RAW_HOSTILE))
HOSTILE_IDS = {name: f"20220000{n:02d}" for n, name in enumerate(HOSTILE_NAMES)}
WELL_FORMED_HOSTILE = ["largest_evaluation"]  # as large as the limits allow, but an expression
ILL_FORMED_HOSTILE = [name for name in HOSTILE_NAMES if name not in WELL_FORMED_HOSTILE]


def _hostile_text(name: str, marker: Path) -> str:
    if name in RAW_HOSTILE:
        return RAW_HOSTILE[name].replace('"2022000009"', f'"{HOSTILE_IDS[name]}"').replace('"2022000099"', f'"{HOSTILE_IDS[name]}"')
    text = submission(HOSTILE_IDS[name], HOSTILE[name])
    return text.replace("MARKER", str(marker))


class HostileRuns:
    def __init__(self, folder: Path, marker: Path):
        self.folder = folder
        self.marker = marker
        self.grade = {}  # name -> (click result, results.json)
        self.check = {}  # name -> click result

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> HostileRuns:
    base = tmp_path_factory.mktemp("hostile")
    folder = base / "in"
    folder.mkdir()
    runs = HostileRuns(folder, base / "pwned")
    for name in HOSTILE_NAMES:
        runs.path(name).write_text(_hostile_text(name, runs.marker), encoding="utf-8", errors="surrogatepass")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(base)
        for name in HOSTILE_NAMES:
            out = base / "out" / name
            result = run("grade", runs.path(name), "--out", out)
            results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else None
            runs.grade[name] = (result, results)
            runs.check[name] = run("check", runs.path(name))
    return runs


def test_the_hostile_files_have_the_sizes_meant(hostile):
    sizes = {name: hostile.path(name).stat().st_size for name in ("string_of_900_kb", "string_of_1_mb", "over_1_mib")}
    assert 900_000 < sizes["string_of_900_kb"] < 1_000_000 < sizes["string_of_1_mb"] <= 1024 * 1024 < sizes["over_1_mib"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_grading_a_hostile_file_exits_0_without_a_traceback(hostile, name):
    result, _ = hostile.grade[name]
    assert (result.exit_code, result.exception, "Traceback" in result.output) == (0, None, False)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_file_gets_one_result_record(hostile, name):
    _, results = hostile.grade[name]
    assert [record["source"] for record in results["students"]] == [str(hostile.path(name))]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_every_reason_given_for_a_hostile_file_is_one_line(hostile, name):
    (record,) = hostile.grade[name][1]["students"]
    reasons = [*record["errors"], *record["warnings"], *(r["message"] for r in record.get("derivations", {}).values() if r["status"] != "right")]
    assert reasons and all(reason and "\n" not in reason and len(reason) < 400 for reason in reasons)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_no_hostile_derivation_earns_credit(hostile, name):
    (record,) = hostile.grade[name][1]["students"]
    block = HOSTILE.get(name) if isinstance(HOSTILE.get(name), dict) else {}
    hostile_keys = {key for key, value in block.items() if value != REFERENCE.get(key)}
    if name == "lone_surrogate":
        hostile_keys = {"h"}
    statuses = {key: result["status"] for key, result in record.get("derivations", {}).items()}
    assert all(statuses.get(key, "not graded") != "right" for key in hostile_keys)


@pytest.mark.parametrize("name", ["derivations_a_string", "derivations_a_list", "over_1_mib"])
def test_a_file_refused_as_a_whole_is_invalid_with_its_reason(hostile, name):
    (record,) = hostile.grade[name][1]["students"]
    assert record["status"] == "invalid" and len(record["errors"]) == 1


def test_no_hostile_expression_runs_code(hostile):
    assert not hostile.marker.exists()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_check_of_a_hostile_file_raises_nothing(hostile, name):
    result = hostile.check[name]
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code in (0, 1)


@pytest.mark.parametrize("name", ILL_FORMED_HOSTILE)
def test_check_refuses_a_hostile_file(hostile, name):
    assert hostile.check[name].exit_code == 1


@pytest.mark.parametrize("name", [n for n in HOSTILE_NAMES if n in ILL_FORMED_HOSTILE])
def test_check_gives_one_line_per_problem_of_a_hostile_file(hostile, name):
    lines = hostile.check[name].stdout.splitlines()
    errors = [line for line in lines if line.startswith(f"{hostile.path(name)}: error: ")]
    plural = "s" if len(errors) != 1 else ""
    assert errors and lines[-1] == f"{hostile.path(name)}: not well-formed ({len(errors)} problem{plural})"


@pytest.mark.parametrize("name", WELL_FORMED_HOSTILE)
def test_check_accepts_a_well_formed_expression_however_large(hostile, name):
    assert hostile.check[name].exit_code == 0


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_check_never_says_right_or_wrong_about_a_hostile_file(hostile, name):
    out = "\n".join(line.split(": ", 1)[1] for line in hostile.check[name].stdout.lower().splitlines())
    assert "right" not in out and "wrong" not in out and "score" not in out


def test_the_console_command_grades_a_folder_of_hostile_files(hostile, tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "grader", "grade", str(hostile.folder), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    records = json.loads((tmp_path / "out" / "results.json").read_text())["students"]
    assert (process.returncode, "Traceback" in process.stderr, len(records)) == (0, False, len(HOSTILE_NAMES))


def test_the_console_command_runs_no_hostile_code(hostile, tmp_path):
    subprocess.run([sys.executable, "-m", "grader", "check", str(hostile.path("python_code"))], capture_output=True, cwd=tmp_path, timeout=600)
    subprocess.run([sys.executable, "-m", "grader", "grade", str(hostile.path("python_code")), "--out", str(tmp_path / "o")], capture_output=True, cwd=tmp_path, timeout=600)
    assert not hostile.marker.exists()


# --- The shipped samples ------------------------------------------------------------------

SHIPPED = {
    # file: (score, misconceptions, {key: (status, mistake)} for the derivations not right)
    "derivations_equivalent_forms.json": (60.0, [], {}),
    "derivations_elu_derivative_missing.json": (55.0, ["elu-derivative-one"], {"grad_v": ("wrong", "elu-derivative-one")}),
    "derivations_parse_error.json": (55.0, [], {"grad_v": ("invalid", None)}),
    "derivations_sigmoid_output.json": (57.5, ["sigmoid-output"], {"o": ("wrong", "sigmoid-output")}),
    "derivations_target_minus_output.json": (
        50.0,
        ["log10-loss", "target-minus-output"],
        {"grad_w": ("wrong", "target-minus-output"), "grad_v": ("wrong", "target-minus-output"), "loss": ("wrong", "log10-loss")},
    ),
}


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> dict[str, dict]:
    base = tmp_path_factory.mktemp("shipped")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(base)
        result = run("grade", *(SAMPLES / name for name in SHIPPED), "--out", base / "out")
    assert result.exit_code == 0, result.output
    records = json.loads((base / "out" / "results.json").read_text())["students"]
    return {Path(record["source"]).name: record for record in records}


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_derivation_sample_scores_as_intended(shipped, name):
    assert (shipped[name]["status"], shipped[name]["score"], shipped[name]["max_score"]) == ("graded", SHIPPED[name][0], 60.0)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_derivation_sample_names_its_mistakes(shipped, name):
    assert shipped[name]["misconceptions"] == SHIPPED[name][1]


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_derivation_sample_has_the_derivation_results_intended(shipped, name):
    off = {key: (r["status"], r["mistake"]) for key, r in shipped[name]["derivations"].items() if r["status"] != "right"}
    assert off == SHIPPED[name][2]


def test_the_shipped_parse_error_names_its_column(shipped):
    assert shipped["derivations_parse_error.json"]["derivations"]["grad_v"]["message"] == "grad_v: unexpected ')' at column 27"


def test_check_reports_the_shipped_parse_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("check", SAMPLES / "derivations_parse_error.json")
    assert result.exit_code == 1 and "error: derivations.grad_v: unexpected ')' at column 27" in result.stdout


@pytest.mark.parametrize("name", [name for name in SHIPPED if name != "derivations_parse_error.json"])
def test_check_accepts_the_other_shipped_derivation_samples(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    assert run("check", SAMPLES / name).exit_code == 0


def test_shipped_student_ids_are_unique():
    ids = [json.loads(path.read_text()).get("student_id") for path in sorted(SAMPLES.glob("*.json"))]
    ids = [student_id for student_id in ids if student_id is not None]
    assert len(ids) == len(set(ids))
