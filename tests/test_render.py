"""Answer keys and problem sheets: golden files, every number against the core, escaping,
templates, LaTeX that compiles, and a key rendered from a plain (non-editable) install."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader import __version__, core, render, variants
from grader.cli import cli
from grader.formatting import fixed
from grader.generate import build_pdf, pdflatex_path
from grader.jsonio import InputError, dumps
from grader.params import HW2, Params, solve_one

GOLDEN = Path(__file__).parent / "golden" / "render"
REPO = Path(__file__).resolve().parent.parent
UPDATE = os.environ.get("HWGEN_UPDATE_GOLDEN") == "1"
needs_pdflatex = pytest.mark.skipif(pdflatex_path() is None, reason="pdflatex is not installed (Debian: texlive-latex-recommended)")

HOSTILE_IDS = [r"\input{/etc/passwd}", "}$%&#_^~", "a--b``c''d", "<b>*x*</b> [l](http://x) $y$ | @me", "Ünïcödé 김민준", "tab\there\nnewline"]


def run(*args, input=None, env=None):
    return CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)


# --- Golden files ----------------------------------------------------------------------------

GOLDEN_CASES = {
    "hw2_key.md": lambda: render.render_key(HW2, None, "md"),
    "hw2_key.tex": lambda: render.render_key(HW2, None, "tex"),
    "hw2_problem.md": lambda: render.render_problem(HW2, None, "md"),
    "hw2_problem.tex": lambda: render.render_problem(HW2, None, "tex"),
}


def _versionless(text: str) -> str:
    # The version line changes with every release; the golden files need not.
    return text.replace(f"hwgen {__version__}", "hwgen VERSION")


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_files_of_the_hw2_instance(name):
    """Regenerate after a deliberate change with HWGEN_UPDATE_GOLDEN=1 and review the diff."""
    text = _versionless(GOLDEN_CASES[name]())
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing {path}; run with HWGEN_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; if on purpose, rerun with HWGEN_UPDATE_GOLDEN=1"


def test_hw2_key_shows_the_worked_steps_a_ta_expects():
    key = render.render_key(HW2, None, "md")
    assert r"u_{1} &= (-1.0)(1.0) + (2.0)(1.5) + (0.0)(-0.5) = 2.0000" in key
    assert r"h_{2} &= e^{u_{2}} - 1 = e^{-1.5000} - 1 = -0.7769 && \text{since } u_{2} < 0" in key
    assert r"h_{1} &= u_{1} = 2.0000 && \text{since } u_{1} \ge 0" in key
    assert r"L = -\sum_{k=1}^{2} o^*_k \ln o_k = -\ln o_{1} = -\ln(0.7338) = 0.3095" in key
    assert r"\operatorname{ELU}'(u_{2}) &= e^{u_{2}} = e^{-1.5000} = 0.2231" in key
    assert "## Part 4. The gradients with numbers (15 points)" in key
    # The log-10 trap of the one real submission, with the number that student wrote.
    assert "`log10-loss`" in key and "L = 0.1344" in key


def test_hw2_key_header_names_the_instance_and_version():
    key = render.render_key(HW2, None, "md")
    assert "- **Instance:** the original HW#2 numbers" in key
    assert f"- **Version:** hwgen {__version__}, variant {render.variant_code(HW2)}" in key


def test_key_of_a_student_names_them_and_the_seed_fingerprint():
    params = variants.variant("s3cret", "alice")
    key = render.render_key(params, "alice", "md", roster={"Student": "Smith, Alice"}, seed_fingerprint="abc123")
    assert "\n- **Student:** `alice` (Smith, Alice)\n- **Version:** hwgen " in key
    assert f", variant {render.variant_code(params)}, seed fingerprint abc123\n- **Network:** 3 inputs" in key
    sheet = render.render_problem(params, "alice", "md")
    assert f"\n- **Student:** `alice`\n- **Version:** hwgen {__version__}, variant {render.variant_code(params)}\n" in sheet


# --- Every number agrees with the core ----------------------------------------------------------

_ROW = re.compile(r"\\begin\{bmatrix\}(.*?)\\end\{bmatrix\}", re.S)


def _summary_block(text: str, fmt: str) -> str:
    start = text.index("Answers at a glance")
    end = text.index("Part 1.", start)
    return text[start:end]


def _summary_values(text: str, fmt: str) -> dict[str, list[list[str]]]:
    """The entries of 'Answers at a glance', by quantity, as the strings printed."""
    block = _summary_block(text, fmt)
    names = {"u": "u", "h": "h", "z": "z", "o": "o", r"\frac{\partial L}{\partial w}": "grad_w",
             r"\frac{\partial L}{\partial v}": "grad_v", r"w^{\text{new}}": "w_new", r"v^{\text{new}}": "v_new"}
    found: dict[str, list[list[str]]] = {}
    for symbol, key in names.items():
        match = re.search(re.escape(symbol) + r" &= \\begin\{bmatrix\}(.*?)\\end\{bmatrix\}", block, re.S)
        assert match, f"{key} missing from the summary"
        found[key] = [row.split("&") for row in match.group(1).split(r"\\")]
        found[key] = [[cell.strip() for cell in row] for row in found[key]]
    found["loss"] = [[re.search(r"L &= (-?\d+\.\d{4})", block).group(1)]]
    return found


def _expected(answers: dict[str, np.ndarray]) -> dict[str, list[list[str]]]:
    out = {}
    for key in core.ANSWER_KEYS:
        value = np.atleast_2d(answers[key])
        out[key] = [[fixed(x) for x in row] for row in value]
    return out


def _assert_key_agrees(params: Params, student_id=None):
    answers = solve_one(params)
    for fmt in render.FORMATS:
        text = render.render_key(params, student_id, fmt)
        assert _summary_values(text, fmt) == _expected(answers), fmt
        # Each worked u_j and h_j of part 2 ends in the core's value too.
        for j, (u, h) in enumerate(zip(answers["u"], answers["h"])):
            assert _worked(text, f"u_{{{j + 1}}} &= ").endswith(f"= {fixed(u)}"), (fmt, j)
            assert _worked(text, f"h_{{{j + 1}}} &= ").split(" && ")[0].endswith(f"= {fixed(h)}") or fixed(h) == "0.0000", (fmt, j)
        assert "-0.0000" not in text


def _worked(text: str, start: str) -> str:
    """One worked equation of an aligned block, its continuation lines joined."""
    begin = text.index(start)
    end = min(i for i in (text.find(" \\\\\n", begin), text.find("\n\\end{aligned}", begin)) if i >= 0)
    while text.startswith(" \\\\\n&\\quad", end):  # a long sum continues on the next line
        nxt = [i for i in (text.find(" \\\\\n", end + 1), text.find("\n\\end{aligned}", end + 1)) if i >= 0]
        end = min(nxt)
    return text[begin:end]


def test_every_number_of_the_hw2_key_agrees_with_the_core():
    _assert_key_agrees(HW2)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=12))
def test_every_number_of_a_variant_key_agrees_with_the_core(seed, student_id):
    _assert_key_agrees(variants.variant(seed, student_id), student_id)


@st.composite
def instances(draw):
    """Any instance: sizes 1-5 (or up to 12 hidden units), any activation, any numbers."""
    n_in, n_hidden, n_out = draw(st.integers(1, 5)), draw(st.integers(1, 12)), draw(st.integers(1, 4))
    number = st.floats(-5, 5, allow_nan=False).map(lambda x: round(x, 2))
    arrays = lambda *shape: np.array(draw(st.lists(number, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))).reshape(shape)
    target = np.eye(n_out)[draw(st.integers(0, n_out - 1))]
    activation = draw(st.sampled_from(sorted(core.ACTIVATIONS)))
    lr = draw(st.sampled_from([0.1, 0.05, 0.5, 1.0, 0.001]))
    return Params.checked(arrays(n_in), arrays(n_hidden, n_in), arrays(n_out, n_hidden), target, lr, activation)


@settings(max_examples=40, deadline=None)
@given(instances())
def test_every_number_of_any_instance_key_agrees_with_the_core(params):
    _assert_key_agrees(params)


@pytest.mark.parametrize("activation", sorted(core.ACTIVATIONS))
def test_each_activation_explains_its_own_branches_and_derivative(activation):
    params = Params.checked(HW2.x, HW2.v, HW2.w, HW2.target, HW2.lr, activation)
    key = render.render_key(params, None, "md")
    text = render.ACTIVATION_TEXT[activation]
    assert f"{text.symbol}'(u_j) = " in key
    assert f"{len(HW2.v)} hidden {text.title} units" in key
    if activation in ("relu", "leaky_relu"):
        assert r"\text{since } u_{2} \le 0" in key and r"\text{since } u_{1} > 0" in key
    if activation == "sigmoid":
        assert r"h_{1}\,(1 - h_{1})" in key
    if activation == "tanh":
        assert r"1 - h_{1}^2 = 1 - (0.9640)^2" in key
    if activation != "elu":
        assert "elu-derivative" not in key  # the ELU-only mistakes do not apply


# --- The problem sheet -------------------------------------------------------------------------


def test_problem_sheet_gives_no_answer_away():
    params = variants.variant("s3cret", "bob")
    answers = solve_one(params)
    for fmt in render.FORMATS:
        sheet = render.render_problem(params, "bob", fmt)
        for key in ("u", "h", "z", "o", "loss", "grad_w", "grad_v", "w_new", "v_new"):
            for value in np.ravel(answers[key]):
                if fixed(value) not in ("0.0000", "1.0000") and not float(fixed(value)).is_integer():
                    assert fixed(value) not in sheet, (fmt, key)
        from grader.derivations import REFERENCE

        for expression in REFERENCE.values():
            assert expression not in sheet


def test_problem_sheet_has_the_statement_points_hint_and_numbers():
    sheet = render.render_problem(HW2, "alice", "md")
    for points in ("**(10 points)** Derive the expressions for $u_j$", "**(15 points)** With the learning rate $\\eta = 0.1$"):
        assert points in sheet
    assert r"(Hint: $\partial L / \partial z_k = o_k - o^*_k$.)" in sheet
    assert r"x = \begin{bmatrix} 1.0 & 1.5 & -0.5 \end{bmatrix}^{\top}" in sheet
    assert "(natural logarithm)" in sheet
    assert '"student_id": "alice"' in sheet


def test_the_expression_examples_on_the_sheet_parse():
    from grader.expr import parse

    for text, free in [("sum(x[i]^2, i)", ()), ("w[k,j] * h[j]^2", ("k", "j")), ("where(u[j] >= 0, u[j], -u[j])", ("j",))]:
        assert f"`{text}`" in render.render_problem(HW2, "a", "md")
        parse(text, free)


def test_derivation_keys_are_the_ones_the_grader_reads():
    from grader.derivations import REQUIRED_KEYS

    assert render.DERIVATION_KEYS == REQUIRED_KEYS


# --- The blank answer file -------------------------------------------------------------------


def test_blank_submission_has_every_answer_as_null_in_its_shape():
    blank = render.blank_submission(HW2, "alice")
    assert blank["student_id"] == "alice"
    assert list(blank["answers"]) == list(core.ANSWER_KEYS)
    assert blank["answers"]["u"] == [None] * 4 and blank["answers"]["loss"] is None
    assert blank["answers"]["grad_w"] == [[None] * 4] * 2 and blank["answers"]["v_new"] == [[None] * 3] * 4
    assert blank["derivations"] == {key: None for key in ("u", "h", "z", "o", "grad_w", "grad_v")}


@given(st.text(max_size=30))
def test_fast_blank_json_is_dumps_of_the_blank_submission(student_id):
    assert render.blank_submission_json(HW2, student_id) == dumps(render.blank_submission(HW2, student_id))


# --- Formatting and escaping ---------------------------------------------------------------------


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_fast_fixed_is_formatting_fixed(value):
    assert render._fx(value) == fixed(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_given_is_the_shortest_exact_positional_form(value):
    text = render.given(value)
    assert "e" not in text and float(text) == value + 0.0
    assert text == np.format_float_positional(value + 0.0, unique=True, trim="0")


@given(st.text())
def test_escaped_text_is_one_line(text):
    for escape in (render.md_escape, render.tex_escape, render.tex_code, render.md_code):
        assert "\n" not in escape(text) and "\r" not in escape(text)


@given(st.text(alphabet=st.characters(codec="ascii"), min_size=1))
def test_md_code_span_cannot_be_closed_by_the_text(text):
    span = render.md_code(text)
    fence = re.match(r"`+", span).group(0)
    inner = span[len(fence) : len(span) - len(fence)]
    assert span.endswith(fence) and fence not in inner.replace("\n", " ")


@pytest.mark.parametrize("student_id", HOSTILE_IDS)
def test_hostile_ids_leave_no_tex_command_or_group_open(student_id):
    for escape in (render.tex_escape, render.tex_code):
        text = escape(student_id)
        assert r"\input{" not in text and "$" not in text.replace(r"\$", "").replace("{\\char36}", "")
        # Braces balance, so nothing after the id is swallowed into a group.
        depth = 0
        for ch in text.replace(r"\{", "").replace(r"\}", ""):
            depth += {"{": 1, "}": -1}.get(ch, 0)
            assert depth >= 0
        assert depth == 0


def test_hostile_ids_print_literally_in_markdown():
    assert render.md_escape("*x* _y_ [l](u) <b> $m$ | `c` @me") == r"\*x\* \_y\_ \[l\](u) \<b\> \$m\$ \| \`c\` \@me"
    assert render.md_escape("1. not a list") == r"1\. not a list"
    assert render.md_escape("# not a heading") == r"\# not a heading"
    assert render.md_code("a`b") == "``a`b``"


# --- Templates -------------------------------------------------------------------------------------


def test_default_templates_are_found_and_complete():
    folder = render.default_templates_dir()
    for name in ("key.md.j2", "key.tex.j2", "keys_all.tex.j2", "problem.md.j2", "problem.tex.j2", "course.txt"):
        assert (folder / name).is_file(), name


def test_templates_dir_overrides_by_file_name(tmp_path):
    (tmp_path / "course.txt").write_text("Deep Learning 101 & more\n")
    (tmp_path / "_header.md.j2").write_text("Custom header for {{ student_id }}\n")
    key = render.render_key(HW2, "a_b", "md", tmp_path)
    assert key.startswith("# Deep Learning 101 \\& more (answer key)")
    assert "Custom header for a\\_b" in key and "## Part 1." in key  # the rest stays the default
    tex = render.render_key(HW2, "a_b", "tex", tmp_path)
    assert r"Deep Learning 101 \& more" in tex


def test_a_template_with_an_unknown_variable_fails_naming_it(tmp_path):
    (tmp_path / "key.md.j2").write_text("{{ no_such_thing }}\n")
    with pytest.raises(InputError, match=r"template key\.md\.j2: 'no_such_thing' is undefined"):
        render.render_key(HW2, None, "md", tmp_path)


def test_a_template_with_a_syntax_error_fails_naming_it(tmp_path):
    (tmp_path / "key.md.j2").write_text("{% if %}\n")
    with pytest.raises(InputError, match=r"template key\.md\.j2: line 1"):
        render.render_key(HW2, None, "md", tmp_path)


ENDLESS = "endless recursion (a template that includes itself, or a macro that calls itself)"


@pytest.mark.parametrize(
    "files, message",
    [
        ({"key.md.j2": b"\xff\xfe"}, "template key.md.j2: not UTF-8 text (byte 0 is invalid)"),
        ({"key.md.j2": b'{% include "_part.md.j2" %}', "_part.md.j2": b"ok \xe9t\xe9"}, "template _part.md.j2: not UTF-8 text (byte 3 is invalid)"),
        ({"course.txt": b"R\xe9seaux"}, "template course.txt: not UTF-8 text (byte 1 is invalid)"),
        ({"key.md.j2": b'{% include "key.md.j2" %}\n'}, f"template key.md.j2: {ENDLESS}: key.md.j2 line 1 -> key.md.j2 again"),
        ({"key.md.j2": b'# Key\n{% include "_a.md.j2" %}', "_a.md.j2": b'a\n\n{% include "key.md.j2" %}'}, f"template key.md.j2: {ENDLESS}: key.md.j2 line 2 -> _a.md.j2 line 3 -> key.md.j2 again"),
        ({"key.md.j2": b"{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}"}, f"template key.md.j2: {ENDLESS}: key.md.j2 line 1 -> key.md.j2 again"),
        ({"key.md.j2": b'# Key\n{{ 1 / 0 }}'}, "template key.md.j2: line 2: division by zero (ZeroDivisionError)"),
        ({"key.md.j2": b"# Key\n\n{{ cycler().current }}"}, "template key.md.j2: line 3: at least one item has to be provided (RuntimeError)"),
    ],
)
def test_a_template_that_is_not_utf8_or_never_ends_is_one_error_line_naming_it(files, message, tmp_path):
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(InputError) as caught:
        render.render_key(HW2, None, "md", tmp_path)
    assert str(caught.value) == message
    result = run("key", "--templates", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr == f"Error: {message}\n"


def test_a_template_cannot_forget_to_escape(tmp_path):
    (tmp_path / "_header.tex.j2").write_text("((( student_id )))\n")
    tex = render.render_key(HW2, "}$%", "tex", tmp_path)
    assert r"\}\$\%" in tex


# --- LaTeX that compiles ------------------------------------------------------------------------


@needs_pdflatex
@pytest.mark.parametrize("student_id", ["2018170622", "Łukasz-07", *HOSTILE_IDS])
def test_keys_and_sheets_compile_and_print_the_id(student_id, tmp_path):
    params = variants.variant("s3cret", student_id)
    roster = {"Student": f"Name of {student_id}"}
    for tex in (render.render_key(params, student_id, "tex", roster=roster), render.render_problem(params, student_id, "tex", roster=roster)):
        pdf = build_pdf(tex, student_id)
        assert pdf.startswith(b"%PDF")
        if shutil.which("pdftotext") and student_id.isascii() and student_id.isprintable():
            (tmp_path / "k.pdf").write_bytes(pdf)
            text = subprocess.run(["pdftotext", str(tmp_path / "k.pdf"), "-"], capture_output=True, text=True).stdout
            assert student_id in text.replace("ˆ", "^").replace("˜", "~").replace("”", "''").replace("“", "``")


@needs_pdflatex
@pytest.mark.parametrize("activation", sorted(core.ACTIVATIONS))
def test_a_key_of_every_activation_and_a_wide_network_compiles(activation):
    rng = np.random.default_rng(3)
    params = Params.checked(rng.normal(size=7).round(1), rng.normal(size=(9, 7)).round(1), rng.normal(size=(3, 9)).round(1), np.eye(3)[2], 0.05, activation)
    assert build_pdf(render.render_key(params, None, "tex"), activation).startswith(b"%PDF")


@needs_pdflatex
def test_pdf_is_reproducible_byte_for_byte():
    tex = render.render_key(HW2, None, "tex")
    assert build_pdf(tex, "a") == build_pdf(tex, "b")


# --- hwgen key ------------------------------------------------------------------------------------


def test_key_command_prints_the_hw2_key_by_default():
    result = run("key")
    assert result.exit_code == 0
    assert result.stdout == render.render_key(HW2, None, "md")


def test_key_command_prints_a_students_key(monkeypatch):
    result = run("key", "--student", "alice", "--format", "tex", env={"HWGEN_SEED": "s3cret"})
    assert result.exit_code == 0
    expected = render.render_key(variants.variant("s3cret", "alice"), "alice", "tex", seed_fingerprint=variants.seed_fingerprint("s3cret"))
    assert result.stdout == expected


def test_key_command_prints_the_key_of_any_instance():
    params = Params.checked(HW2.x, HW2.v, HW2.w, HW2.target, 0.5, "tanh")
    result = run("key", "--params", "-", input=json.dumps(params.to_json()))
    assert result.exit_code == 0
    assert "hidden tanh units" in result.stdout and r"\tanh'(u_j)" in result.stdout


def test_key_command_errors():
    result = run("key", "--student", "alice", env={"HWGEN_SEED": None})
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "Error: --student needs --seed (or the HWGEN_SEED environment variable)"
    result = run("key", "--student", "a", "--params", "x.json", "--seed", "s")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "Error: give --student or --params, not both"
    result = run("key", "--params", "-", input='{"x": [1]}')
    assert result.exit_code == 1
    assert result.stderr == "Error: standard input: v: is missing\n"


# --- A plain install renders keys -------------------------------------------------------------------


def test_a_wheel_installed_without_the_source_tree_renders_a_key(tmp_path):
    """The templates travel inside the wheel (grader/templates/), so `pip install .` renders keys."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)], check=True, capture_output=True)
    (wheel,) = wheels.glob("hwgen-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for template in ("key.md.j2", "key.tex.j2", "keys_all.tex.j2", "problem.md.j2", "problem.tex.j2", "course.txt"):
        assert f"grader/templates/{template}" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)], check=True, capture_output=True)
    # Run from an empty folder and without PYTHONPATH (set to test a checkout, say), so that
    # nothing of the source checkout can be imported.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(python), "-m", "grader", "key"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert result.stdout == render.render_key(HW2, None, "md")
    where = subprocess.run([str(python), "-c", "import grader.render as r; print(r.default_templates_dir())"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(venv)


def test_key_shows_the_expected_derivations_in_the_expression_language():
    from grader import derivations, render
    from grader.params import HW2

    key = render.render_key(HW2, None, "md")
    for text in derivations.REFERENCE.values():
        assert f"`{text}`" in key


def test_blank_submission_explains_the_language_with_an_example_that_is_not_an_answer():
    from grader import derivations, render
    from grader.params import HW2

    help_text = render.blank_submission(HW2, "s")["help"]
    assert "sum(x[i]^2, i)" in help_text
    assert not any(reference in help_text for reference in derivations.REFERENCE.values())


def test_blank_submission_is_well_formed_without_warnings():
    import json as json_module

    from grader import render, submission
    from grader.params import HW2

    blank = json_module.loads(render.blank_submission_json(HW2, "s"))
    result = submission.from_json(blank, submission.layout_of(HW2))
    assert isinstance(result, submission.Submission) and not result.warnings
