"""Answer keys and problem sheets, in Markdown and LaTeX, from Jinja templates.

The mathematics is written once, here, in LaTeX math syntax, which both outputs share:
pdflatex typesets it, and GitHub and Jupyter render it between ``$$`` in Markdown. The
templates hold the prose and the layout, so an instructor can restyle a key (course name,
header, order of sections) without touching a formula, and every number in it comes from one
``core.solve`` computation.

Escaping is on by default: a template prints every value through the output's escaper (LaTeX
or Markdown) unless the value is ``Safe``, the marker this module puts on the math it builds.
A student id such as ``\\input{/etc/passwd}`` or ``}$%&#_^~`` therefore prints literally, even
from an instructor's own template that forgets to escape it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import traceback
import unicodedata
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from grader import __version__, core, derivations, mistakes
from grader.formatting import fixed
from grader.jsonio import InputError, dumps
from grader.params import HW2, Params, answer_shapes, batch_groups, stack

FORMATS = ("md", "tex")
# The points of parts 1-5, as in HW#2.
POINTS = {1: 10, 2: 10, 3: 10, 4: 15, 5: 15}
# The quantities whose general expression a student writes in the expression language; the
# grading of derivations (grader/derivations.py) reads the same keys.
DERIVATION_KEYS = ("u", "h", "z", "o", "grad_w", "grad_v")
# Past this many terms a sum continues on the next line, so a wide network stays on the page.
TERMS_PER_LINE = 4
# e^{z_k} is shown on the way to o_k only while it reads as a number a student would write.
MAX_SHOWN_EXPONENT = 20.0


class Safe(str):
    """Text already in the output's syntax (built LaTeX math): templates print it unescaped."""

    __slots__ = ()


# --- Escaping -------------------------------------------------------------------------------

_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "_": r"\_",
    "^": r"\textasciicircum{}",
    "~": r"\textasciitilde{}",
    # In the default OT1 font encoding these print as other glyphs (< as an inverted !).
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': "''",
    # Ligatures: -- and --- would become dashes, !` and ?` inverted marks.
    "-": "-{}",
    "'": "'{}",
    "`": r"\`{}",
}
# Letters beyond ASCII that pdflatex's default OT1 encoding composes from Computer Modern
# (tested one by one). Anything else (Hangul, Greek, Cyrillic, ...) would stop pdflatex with
# "Unicode character not set up", so it prints as '?' in LaTeX; the Markdown keeps it.
_TEX_LETTERS = frozenset(
    "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝßàáâãäåæçèéêëìíîïñòóôõöøùúûüýÿ"
    "ĀāĂăĆćĈĉĊċČčĎďĒēĔĕĖėĚěĜĝĞğĠġĢģĤĥĨĩĪīĬĭİıĲĳĴĵĶķĹĺĻļĽľŁłŃńŅņŇňŌōŎŏŐőŒœŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŴŵŶŷŸŹźŻżŽž"
)
# Markdown that would turn into emphasis, code, links, HTML, tables, math, mentions or entities.
_MD_SPECIAL = frozenset("\\`*_[]<>$|~&@")
# At the start of a line these open a list or a heading.
_MD_LINE_START = re.compile(r"^(\d+)([.)])|^([-+=#])")
_TT_SPECIAL = frozenset("\\{}$&#^_%~")


_TEX_TABLE = str.maketrans(_TEX_SPECIAL)
# In Computer Modern Typewriter ' and ` are curly at their ASCII codes; 13 and 18 are the
# straight quote and the grave accent (what the upquote package uses).
_TT_TABLE = str.maketrans({**{ch: "{\\char%d}" % ord(ch) for ch in _TT_SPECIAL}, "'": "{\\char13}", "`": "{\\char18}"})
_MD_TABLE = str.maketrans({ch: "\\" + ch for ch in _MD_SPECIAL})


def _one_line(text: str) -> str:
    """Line breaks and other control characters as single spaces: a value never opens a new block."""
    if text.isprintable():  # the common case, and fast: no control or separator other than " "
        return text
    return "".join(" " if unicodedata.category(ch)[0] in "CZ" and ch != " " else ch for ch in text)


def _tex_letters(text: str) -> str:
    """Non-ASCII characters pdflatex cannot typeset by default replaced by '?'."""
    if text.isascii():
        return text
    return "".join(ch if ch.isascii() or ch in _TEX_LETTERS else "?" for ch in text)


def tex_escape(text: Any) -> Safe:
    """``text`` as LaTeX that prints it literally, in one line."""
    return Safe(_tex_letters(_one_line(str(text))).translate(_TEX_TABLE))


def _tt_chars(line: str) -> str:
    # Computer Modern Typewriter has every ASCII glyph at its own code, so a special character
    # is printed by number (\char) and looks like its neighbours, not like a math symbol.
    return _tex_letters(_one_line(line)).translate(_TT_TABLE)


def tex_code(text: Any) -> Safe:
    """``text`` literally in typewriter type."""
    return Safe(r"\texttt{" + _tt_chars(str(text)) + "}")


def tex_code_block(text: Any) -> Safe:
    """Several lines of ``text`` literally in typewriter type, indentation kept."""
    lines = []
    for line in str(text).rstrip("\n").split("\n"):
        body = line.lstrip(" ")
        indent = "~" * (len(line) - len(body))  # a tie is one character wide in typewriter type
        lines.append(indent + _tt_chars(body))
    # \frenchspacing: after a colon or comma comes one space, as typed, not a wider one.
    return Safe("\\begin{flushleft}\\ttfamily\\small\\frenchspacing\n" + "\\\\\n".join(lines) + "\n\\end{flushleft}")


def md_escape(text: Any) -> Safe:
    """``text`` as Markdown that prints it literally, in one line (no emphasis, links, math, HTML)."""
    escaped = _one_line(str(text)).translate(_MD_TABLE)
    return Safe(_MD_LINE_START.sub(lambda m: (m.group(1) or "") + "\\" + (m.group(2) or m.group(3)), escaped, count=1))


def _backtick_fence(text: str, least: int) -> str:
    """A run of backticks longer than any inside ``text``, so that the text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(least, longest + 1)


def md_code(text: Any) -> Safe:
    """``text`` as a Markdown code span."""
    flat = _one_line(str(text))
    fence = _backtick_fence(flat, 1)
    return Safe(f"{fence} {flat} {fence}" if flat.startswith("`") or flat.endswith("`") else f"{fence}{flat}{fence}")


def md_code_block(text: Any, language: str = "") -> Safe:
    """``text`` as a fenced Markdown code block."""
    body = str(text).rstrip("\n")
    fence = _backtick_fence(body, 3)
    return Safe(f"{fence}{language}\n{body}\n{fence}")


_ESCAPERS: dict[str, Callable[[Any], Safe]] = {"md": md_escape, "tex": tex_escape}
_CODE: dict[str, Callable[[Any], Safe]] = {"md": md_code, "tex": tex_code}
_CODE_BLOCK: dict[str, Callable[..., Safe]] = {"md": md_code_block, "tex": lambda text, language="": tex_code_block(text)}


# --- Numbers and math ----------------------------------------------------------------------


def given(value: float) -> str:
    """A given number as the problem states it: 1.0, -0.5, 0.25 (shortest exact form, no exponent)."""
    text = repr(float(value) + 0.0)  # + 0.0 turns -0.0 into 0.0
    # repr is the shortest exact form too, and much faster; it switches to exponents past 1e16.
    return text if "e" not in text else np.format_float_positional(float(value) + 0.0, unique=True, trim="0")


def _fx(value: float) -> str:
    """formatting.fixed at 4 places, inlined: a key formats a few hundred numbers, a class millions."""
    text = f"{value:.4f}"
    return "0.0000" if text == "-0.0000" else text


def _factor(text: str) -> str:
    """A factor of a product, in parentheses as a student writes it: (-1.0)(1.5)."""
    return f"({text})"


def _sub(index: int) -> str:
    """A 1-based subscript for a 0-based index."""
    return str(index + 1)


def _range(n: int) -> str:
    """1, ..., n as an index range reads: "1, 2" for two."""
    return ", ".join(str(m + 1) for m in range(n)) if n <= 3 else rf"1, \dots, {n}"


def _bmatrix(cells: Sequence[Sequence[str]]) -> str:
    return r"\begin{bmatrix} " + r" \\ ".join(" & ".join(row) for row in cells) + r" \end{bmatrix}"


def _matrix(values: np.ndarray, fmt: Callable[[float], str] | None = None) -> str:
    """A matrix, a column (1-D) or a row (shape (1, n)) as a bmatrix of entries, 4 decimals by default."""
    values = np.asarray(values, dtype=np.float64)
    rows = (values[:, None] if values.ndim == 1 else values).tolist()  # Python floats format faster
    return _bmatrix([[(fmt or _fx)(x) for x in row] for row in rows])


def _row(values: np.ndarray, fmt: Callable[[float], str] | None = None) -> str:
    return _matrix(np.asarray(values)[None, :], fmt)


def _sum_lines(terms: Sequence[str]) -> list[str]:
    """A sum of terms cut into lines of TERMS_PER_LINE; lines after the first start with +."""
    chunks = [terms[n : n + TERMS_PER_LINE] for n in range(0, len(terms), TERMS_PER_LINE)]
    return [(" + " if n else "") + " + ".join(chunk) for n, chunk in enumerate(chunks)]


def _equation_lines(lhs: str, middle: Sequence[str], result: str) -> list[str]:
    """``lhs = middle... = result`` as aligned lines (``&=`` aligned), a long sum continued."""
    first, *rest = middle
    if not rest:
        return [f"{lhs} &= {first} = {result}"]
    return [f"{lhs} &= {first}", *(rf"&\quad {line}" for line in rest[:-1]), rf"&\quad {rest[-1]} = {result}"]


def _aligned(lines: Iterable[str]) -> Safe:
    return Safe("\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}")


def _exact_or_fixed(value: float) -> str:
    """A derivative value: exact constants (1, 0, 0.01) as such, anything else to 4 decimals."""
    if value in (0.0, 1.0, core.LEAKY_RELU_SLOPE):
        return given(value).removesuffix(".0")
    return _fx(value)


# --- Activations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActivationText:
    """How a key writes one hidden activation: its definition, derivative and worked steps."""

    title: str  # in prose: "ELU"
    symbol: str  # in math: \operatorname{ELU}
    definition: Callable[[str], str]  # f(s) = ... for the symbol s
    derivative: Callable[[str], str]  # f'(s) = ...
    # (j, u_j, h_j) -> the right-hand side of h_j = ..., with the branch taken noted
    h_step: Callable[[str, float, float], str]
    # (j, u_j, h_j, f'(u_j)) -> the right-hand side of f'(u_j) = ...
    df_step: Callable[[str, float, float, float], str]


def _cases(*rows: tuple[str, str]) -> str:
    return r"\begin{cases} " + r" \\ ".join(f"{value} & {cond}" for value, cond in rows) + r" \end{cases}"


def _branch_note(condition: str, aside: str = "") -> str:
    """The branch a piecewise function takes, noted at the right: "since u_2 < 0". Math is kept
    out of \\text so that MathJax 2 (older Jupyter) renders it as well as LaTeX does."""
    return rf" && \text{{since }} {condition}" + (rf"\text{{, {aside}}}" if aside else "")


def _elu_h(j: str, u: float, h: float) -> str:
    if u >= 0:
        return f"u_{{{j}}} = {_fx(h)}" + _branch_note(rf"u_{{{j}}} \ge 0")
    return f"e^{{u_{{{j}}}}} - 1 = e^{{{_fx(u)}}} - 1 = {_fx(h)}" + _branch_note(rf"u_{{{j}}} < 0")


def _elu_df(j: str, u: float, h: float, df: float) -> str:
    if u >= 0:
        return "1" + _branch_note(rf"u_{{{j}}} \ge 0")
    # e^u = h + 1 on the negative branch: the shortcut a student can check against part 2.
    return f"e^{{u_{{{j}}}}} = e^{{{_fx(u)}}} = {_fx(df)}" + _branch_note(rf"u_{{{j}}} < 0", "equal to ") + f"h_{{{j}}} + 1"


def _piecewise_h(slope: float) -> Callable[[str, float, float], str]:
    def h_step(j: str, u: float, h: float) -> str:
        if u > 0:
            return f"u_{{{j}}} = {_fx(h)}" + _branch_note(rf"u_{{{j}}} > 0")
        value = "0" if slope == 0 else rf"{given(slope)}\,u_{{{j}}} = {given(slope)}\,({_fx(u)}) = {_fx(h)}"
        return value + _branch_note(rf"u_{{{j}}} \le 0")

    return h_step


def _piecewise_df(slope: float) -> Callable[[str, float, float, float], str]:
    def df_step(j: str, u: float, h: float, df: float) -> str:
        if u > 0:
            return "1" + _branch_note(rf"u_{{{j}}} > 0")
        return given(slope).removesuffix(".0") + _branch_note(rf"u_{{{j}}} \le 0")

    return df_step


def _sigmoid_h(j: str, u: float, h: float) -> str:
    return rf"\frac{{1}}{{1 + e^{{-u_{{{j}}}}}}} = \frac{{1}}{{1 + e^{{{_fx(-u)}}}}} = {_fx(h)}"


def _sigmoid_df(j: str, u: float, h: float, df: float) -> str:
    return rf"h_{{{j}}}\,(1 - h_{{{j}}}) = {_fx(h)}\,(1 - {_paren_neg(_fx(h))}) = {_fx(df)}"


def _tanh_h(j: str, u: float, h: float) -> str:
    return rf"\tanh(u_{{{j}}}) = \tanh({_fx(u)}) = {_fx(h)}"


def _tanh_df(j: str, u: float, h: float, df: float) -> str:
    return rf"1 - h_{{{j}}}^2 = 1 - ({_fx(h)})^2 = {_fx(df)}"


def _paren_neg(text: str) -> str:
    return f"({text})" if text.startswith("-") else text


_SLOPE = given(core.LEAKY_RELU_SLOPE)

ACTIVATION_TEXT: dict[str, ActivationText] = {
    "elu": ActivationText(
        "ELU",
        r"\operatorname{ELU}",
        lambda s: _cases((s, rf"{s} \ge 0"), (f"e^{{{s}}} - 1", f"{s} < 0")),
        lambda s: _cases(("1", rf"{s} \ge 0"), (f"e^{{{s}}}", f"{s} < 0")),
        _elu_h,
        _elu_df,
    ),
    "relu": ActivationText(
        "ReLU",
        r"\operatorname{ReLU}",
        lambda s: _cases((s, f"{s} > 0"), ("0", rf"{s} \le 0")),
        # At 0 the core takes the left derivative, as PyTorch and JAX do.
        lambda s: _cases(("1", f"{s} > 0"), ("0", rf"{s} \le 0")),
        _piecewise_h(0.0),
        _piecewise_df(0.0),
    ),
    "leaky_relu": ActivationText(
        "leaky ReLU",
        r"\operatorname{LeakyReLU}",
        lambda s: _cases((s, f"{s} > 0"), (rf"{_SLOPE}\,{s}", rf"{s} \le 0")),
        lambda s: _cases(("1", f"{s} > 0"), (_SLOPE, rf"{s} \le 0")),
        _piecewise_h(core.LEAKY_RELU_SLOPE),
        _piecewise_df(core.LEAKY_RELU_SLOPE),
    ),
    "sigmoid": ActivationText(
        "sigmoid",
        r"\sigma",
        lambda s: rf"\frac{{1}}{{1 + e^{{-{s}}}}}",
        lambda s: rf"\sigma({s})\,\bigl(1 - \sigma({s})\bigr)",
        _sigmoid_h,
        _sigmoid_df,
    ),
    "tanh": ActivationText(
        "tanh",
        r"\tanh",
        lambda s: rf"\frac{{e^{{{s}}} - e^{{-{s}}}}}{{e^{{{s}}} + e^{{-{s}}}}}",
        lambda s: rf"1 - \tanh^2({s})",
        _tanh_h,
        _tanh_df,
    ),
}
assert set(ACTIVATION_TEXT) == set(core.ACTIVATIONS), "every activation needs its text"


# --- What the templates see ----------------------------------------------------------------------


@dataclass(frozen=True)
class Worked:
    """One instance's solution, every quantity without the batch axis (fields of core.Solution)."""

    u: np.ndarray
    h: np.ndarray
    z: np.ndarray
    o: np.ndarray
    loss: float
    grad_w: np.ndarray
    grad_v: np.ndarray
    w_new: np.ndarray
    v_new: np.ndarray
    dz: np.ndarray
    dh: np.ndarray
    df: np.ndarray

    @classmethod
    def from_solution(cls, sol: core.Solution, n: int) -> "Worked":
        return cls(**{f.name: getattr(sol, f.name)[n] for f in fields(core.Solution)})


def solve_batch(instances: Sequence[Params]) -> list[Worked]:
    """Every instance solved in batched core.solve calls (one per activation and size)."""
    out: list[Worked | None] = [None] * len(instances)
    for (activation, _), members in batch_groups(list(instances)).items():
        sol = core.solve(**stack([instances[n] for n in members]), activation=activation)
        for row, n in enumerate(members):
            out[n] = Worked.from_solution(sol, row)
    return out  # type: ignore[return-value]


def variant_code(params: Params) -> str:
    """A short public code of the instance (a hash of its parameters), printed on the sheet and
    on the key so that a TA can see at a glance that the two belong together."""
    digest = hashlib.sha256(dumps(params.to_json()).encode()).hexdigest()[:8].upper()
    return f"{digest[:4]}-{digest[4:]}"


def student_name(roster: dict[str, str]) -> str | None:
    """The student's name from the kept roster columns (Canvas 'Student', or a plain 'name')."""
    for column, value in roster.items():
        if column.strip().lower() in ("student", "name", "student name", "full name") and value.strip():
            return value.strip()
    return None


def _given_context(p: Params) -> dict[str, Safe]:
    return {
        "x": Safe(_row(p.x, given) + r"^{\top}"),
        "v": Safe(_matrix(p.v, given)),
        "w": Safe(_matrix(p.w, given)),
        "target": Safe(_row(p.target, _exact_or_fixed) + r"^{\top}"),
        "lr": Safe(given(p.lr)),
    }


@functools.lru_cache(maxsize=64)
def _definitions(sizes: tuple[int, int, int], activation: str) -> dict[str, Safe]:
    """Part 1 and part 3: the general expressions, for these sizes and this activation.
    Shared by every student of a class, so built once."""
    n_in, n_hidden, n_out = sizes
    act = ACTIVATION_TEXT[activation]
    f = act.symbol
    softmax_den = " + ".join(f"e^{{z_{{{k + 1}}}}}" for k in range(n_out)) if n_out <= 3 else rf"\sum_{{m=1}}^{{{n_out}}} e^{{z_m}}"
    forward = [
        rf"u_j &= \sum_{{i=1}}^{{{n_in}}} v_{{ji}}\,x_i \qquad j = {_range(n_hidden)}",
        rf"h_j &= {f}(u_j) = {act.definition('u_j')}",
        rf"z_k &= \sum_{{j=1}}^{{{n_hidden}}} w_{{kj}}\,h_j \qquad k = {_range(n_out)}",
        rf"o_k &= \frac{{e^{{z_k}}}}{{{softmax_den}}}",
        rf"L &= -\sum_{{k=1}}^{{{n_out}}} o^*_k \ln o_k",
    ]
    d = r"\partial"
    return {
        "activation": Safe(rf"{f}(u) = {act.definition('u')}"),
        "activation_prime": Safe(rf"{f}'(u) = {act.derivative('u')}"),
        "forward": _aligned(forward),
        "dz": _aligned(
            [
                rf"\frac{{{d} L}}{{{d} z_k}} &= -\sum_{{m=1}}^{{{n_out}}} o^*_m \frac{{{d} \ln o_m}}{{{d} z_k}}"
                rf" = -\sum_{{m=1}}^{{{n_out}}} o^*_m \left(\delta_{{mk}} - o_k\right)"
                rf" = o_k \sum_{{m=1}}^{{{n_out}}} o^*_m - o^*_k = o_k - o^*_k",
            ]
        ),
        "grad_w": _aligned(
            [
                rf"\frac{{{d} L}}{{{d} w_{{kj}}}} &= \frac{{{d} L}}{{{d} z_k}}\,\frac{{{d} z_k}}{{{d} w_{{kj}}}}"
                r" = (o_k - o^*_k)\,h_j",
            ]
        ),
        "grad_v": _aligned(
            [
                rf"\frac{{{d} L}}{{{d} v_{{ji}}}} &= \sum_{{k=1}}^{{{n_out}}} \frac{{{d} L}}{{{d} z_k}}\,"
                rf"\frac{{{d} z_k}}{{{d} h_j}}\,\frac{{{d} h_j}}{{{d} u_j}}\,\frac{{{d} u_j}}{{{d} v_{{ji}}}}",
                rf"&= \Bigl[\sum_{{k=1}}^{{{n_out}}} (o_k - o^*_k)\,w_{{kj}}\Bigr]\,{f}'(u_j)\,x_i",
            ]
        ),
        "f_prime": Safe(rf"{f}'(u_j) = {act.derivative('u_j')}"),
    }


def _forward_steps(p: Params, s: Worked) -> dict[str, Safe]:
    """Part 2: every value with the numbers substituted."""
    n_in, n_hidden, n_out = p.sizes
    act = ACTIVATION_TEXT[p.activation]
    u_lines, h_lines, z_lines, o_lines = [], [], [], []
    for j in range(n_hidden):
        terms = [_factor(given(p.v[j, i])) + _factor(given(p.x[i])) for i in range(n_in)]
        u_lines += _equation_lines(f"u_{{{_sub(j)}}}", _sum_lines(terms), _fx(s.u[j]))
        h_lines.append(f"h_{{{_sub(j)}}} &= " + act.h_step(_sub(j), s.u[j], s.h[j]))
    for k in range(n_out):
        terms = [_factor(given(p.w[k, j])) + _factor(_fx(s.h[j])) for j in range(n_hidden)]
        z_lines += _equation_lines(f"z_{{{_sub(k)}}}", _sum_lines(terms), _fx(s.z[k]))
    show_exp = bool(np.abs(s.z).max() <= MAX_SHOWN_EXPONENT)
    exps = np.exp(np.clip(s.z, None, MAX_SHOWN_EXPONENT))
    for k in range(n_out):
        num = f"e^{{{_fx(s.z[k])}}}"
        den = " + ".join(f"e^{{{_fx(z)}}}" for z in s.z)
        line = rf"o_{{{_sub(k)}}} &= \frac{{{num}}}{{{den}}}"
        if show_exp:
            line += rf" = \frac{{{_fx(exps[k])}}}{{{_fx(exps.sum())}}}"
        o_lines.append(f"{line} = {_fx(s.o[k])}")
    t = p.target_class
    loss = (
        rf"L = -\sum_{{k=1}}^{{{n_out}}} o^*_k \ln o_k = -\ln o_{{{_sub(t)}}}"
        rf" = -\ln({_fx(s.o[t])}) = {_fx(s.loss)}"
    )
    return {
        "u": _aligned(u_lines),
        "h": _aligned(h_lines),
        "z": _aligned(z_lines),
        "o": _aligned(o_lines),
        "loss": Safe(loss),
    }


def _backward_steps(p: Params, s: Worked) -> dict[str, Safe]:
    """Part 4: dL/dz, dL/dw as an outer product, dL/dh and f'(u) on the way to dL/dv."""
    n_in, n_hidden, n_out = p.sizes
    act = ACTIVATION_TEXT[p.activation]
    d = r"\partial"
    dz_lines = [
        rf"{d} L / {d} z_{{{_sub(k)}}} &= o_{{{_sub(k)}}} - o^*_{{{_sub(k)}}}"
        rf" = {_fx(s.o[k])} - {_exact_or_fixed(p.target[k])} = {_fx(s.dz[k])}"
        for k in range(n_out)
    ]
    # Three lines, not one: with negative entries the product is wider than a page.
    grad_w = _aligned(
        [
            rf"\frac{{{d} L}}{{{d} w}} &= (o - o^*)\,h^{{\top}} = {_matrix(s.dz)}\,{_row(s.h)}",
            rf"&= {_matrix(s.grad_w)}",
        ]
    )
    dh_lines, df_lines, du_lines = [], [], []
    for j in range(n_hidden):
        jj = _sub(j)
        terms = [_factor(_fx(s.dz[k])) + _factor(given(p.w[k, j])) for k in range(n_out)]
        dh_lines += _equation_lines(rf"{d} L / {d} h_{{{jj}}}", _sum_lines(terms), _fx(s.dh[j]))
        df_lines.append(rf"{act.symbol}'(u_{{{jj}}}) &= " + act.df_step(jj, s.u[j], s.h[j], s.df[j]))
        du_lines.append(
            rf"\delta_{{{jj}}} = {d} L / {d} u_{{{jj}}} &= ({d} L / {d} h_{{{jj}}})\,{act.symbol}'(u_{{{jj}}})"
            rf" = ({_fx(s.dh[j])})({_exact_or_fixed(s.df[j])}) = {_fx(s.dh[j] * s.df[j])}"
        )
    grad_v = _aligned(
        [
            rf"\frac{{{d} L}}{{{d} v}} &= \delta\,x^{{\top}} = {_matrix(s.dh * s.df)}\,{_row(p.x, given)}",
            rf"&= {_matrix(s.grad_v)}",
        ]
    )
    return {
        "dz": _aligned(dz_lines),
        "grad_w": grad_w,
        "dh": _aligned(dh_lines),
        "df": _aligned(df_lines),
        "du": _aligned(du_lines),
        "grad_v": grad_v,
    }


def _update_steps(p: Params, s: Worked) -> dict[str, Safe]:
    """Part 5: one gradient-descent step, as matrices."""
    d = r"\partial"
    lr = given(p.lr)

    def step(name: str, old: np.ndarray, grad: np.ndarray, new: np.ndarray) -> Safe:
        return _aligned(
            [
                rf"{name}^{{\text{{new}}}} &= {name} - \eta\,\frac{{{d} L}}{{{d} {name}}}",
                rf"&= {_matrix(old, given)} - {lr}\,{_matrix(grad)}",
                rf"&= {_matrix(new)}",
            ]
        )

    return {"w_new": step("w", p.w, s.grad_w, s.w_new), "v_new": step("v", p.v, s.grad_v, s.v_new)}


def _summary(s: Worked) -> Safe:
    """Every answer at a glance, for grading quickly."""
    d = r"\partial"
    return _aligned(
        [
            rf"u &= {_row(s.u)} & h &= {_row(s.h)}",
            rf"z &= {_row(s.z)} & o &= {_row(s.o)}",
            rf"L &= {_fx(s.loss)}",
            rf"\frac{{{d} L}}{{{d} w}} &= {_matrix(s.grad_w)} & \frac{{{d} L}}{{{d} v}} &= {_matrix(s.grad_v)}",
            rf"w^{{\text{{new}}}} &= {_matrix(s.w_new)} & v^{{\text{{new}}}} &= {_matrix(s.v_new)}",
        ]
    )


_SYMBOLS = {
    "u": "u",
    "h": "h",
    "z": "z",
    "o": "o",
    "loss": "L",
    "grad_w": r"\frac{\partial L}{\partial w}",
    "grad_v": r"\frac{\partial L}{\partial v}",
    "w_new": r"w^{\text{new}}",
    "v_new": r"v^{\text{new}}",
}


def wrong_values(instances: Sequence[Params], worked: Sequence[Worked]) -> list[list[tuple[mistakes.Mistake, np.ndarray]]]:
    """For each instance, every catalogued mistake that applies and the value it leads to,
    computed in batched calls like solve_batch."""
    out: list[list[tuple[mistakes.Mistake, np.ndarray]] | None] = [None] * len(instances)
    for (activation, _), members in batch_groups(list(instances)).items():
        earlier = {key: np.stack([np.asarray(getattr(worked[n], key)) for n in members]) for key in _CHAIN_KEYS}
        chain = mistakes.chain_from(stack([instances[n] for n in members]), earlier, activation)
        values = [(m, mistakes.spoiled(chain, m)) for m in mistakes.for_activation(activation)]
        for row, n in enumerate(members):
            out[n] = [(m, value[row]) for m, value in values]
    return out  # type: ignore[return-value]


def _mistakes(s: Worked, wrong: list[tuple[mistakes.Mistake, np.ndarray]]) -> list[dict[str, Any]]:
    """The mistakes to show, each with the wrong values it leads to here."""
    by_id: dict[str, dict[str, Any]] = {}
    for mistake, value in wrong:
        if np.shape(value) != np.shape(getattr(s, mistake.quantity)):
            continue  # a transposed matrix gives itself away by its shape
        text = _fx(value) if np.ndim(value) == 0 else (_row(value) if np.ndim(value) == 1 else _matrix(value))
        # A mistake that spoils two answers is listed once, with both wrong values.
        entry = by_id.setdefault(mistake.id, {"id": mistake.id, "explanation": mistake.explanation, "wrong": []})
        entry["wrong"].append(Safe(f"{_SYMBOLS[mistake.quantity]} = {text}"))
    return list(by_id.values())


_CHAIN_KEYS = ("u", "h", "z", "o", "grad_w", "grad_v")


def _same(a: Params, b: Params) -> bool:
    """Whether two instances are the same problem (Params holds arrays, so == will not do)."""
    return a.activation == b.activation and a.lr == b.lr and all(
        np.array_equal(getattr(a, name), getattr(b, name)) for name in ("x", "v", "w", "target")
    )


def _header_context(
    params: Params, student_id: str | None, roster: dict[str, str] | None, seed_fingerprint: str | None
) -> dict[str, Any]:
    n_in, n_hidden, n_out = params.sizes
    act = ACTIVATION_TEXT[params.activation]
    roster = dict(roster or {})
    return {
        "student_id": student_id,
        # What the key is of, when it is no student's: the homework as set, or any instance.
        "instance": "the original HW#2 numbers" if _same(params, HW2) else "given by its parameters",
        "student_name": student_name(roster),
        "roster": roster,
        "version": f"hwgen {__version__}",
        "seed_fingerprint": seed_fingerprint,
        "variant_code": variant_code(params),
        "points": POINTS,
        "total_points": sum(POINTS.values()),
        "sizes": {"inputs": n_in, "hidden": n_hidden, "outputs": n_out},
        "activation": {"name": params.activation, "title": act.title, "symbol": Safe(act.symbol)},
        "given": _given_context(params),
        "definitions": _definitions(params.sizes, params.activation),
    }


def key_context(
    params: Params,
    worked: Worked,
    student_id: str | None = None,
    roster: dict[str, str] | None = None,
    seed_fingerprint: str | None = None,
    wrong: list[tuple[mistakes.Mistake, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Everything a key template sees (documented in templates/README.md). ``wrong`` is this
    instance's entry of wrong_values, computed here when not given."""
    if wrong is None:
        wrong = wrong_values([params], [worked])[0]
    return {
        **_header_context(params, student_id, roster, seed_fingerprint),
        "forward": _forward_steps(params, worked),
        "backward": _backward_steps(params, worked),
        "update": _update_steps(params, worked),
        "summary": _summary(worked),
        "mistakes": _mistakes(worked, wrong),
        "expressions": _expressions(params.activation),
    }


def _expressions(activation: str) -> dict[str, list[dict[str, str]]]:
    """The expected answers of parts 1 and 3 in the expression language students submit
    derivations in, by part; empty for activations the reference expressions do not cover."""
    if activation != "elu":
        return {"part1": [], "part3": []}
    rows = [{"key": key, "text": derivations.REFERENCE[key]} for key in DERIVATION_KEYS]
    return {"part1": rows[:4], "part3": rows[4:]}


def problem_context(
    params: Params, student_id: str | None = None, roster: dict[str, str] | None = None
) -> dict[str, Any]:
    """Everything a problem-sheet template sees. The seed's fingerprint is left out on purpose:
    nothing a student receives is derived from the secret except their own numbers."""
    return {
        **_header_context(params, student_id, roster, None),
        # Plain text, not Safe: the template prints it as code, escaped.
        "submission_json": blank_submission_json(params, student_id or "your-student-id"),
        "answer_rows": _answer_rows(params),
        "derivation_rows": _derivation_rows(),
    }


def _answer_rows(p: Params) -> list[dict[str, Any]]:
    """What each key of "answers" holds, for the table on the problem sheet."""
    n_in, n_hidden, n_out = p.sizes
    d = r"\partial"

    def numbers(n: int, letter: str) -> str:
        return f"{n} numbers, {letter} = 1 to {n}"

    def rows(n_rows: int, row: str, n_cols: int, col: str) -> str:
        return f"{n_rows} rows ({row} = 1 to {n_rows}) of {n_cols} numbers ({col} = 1 to {n_cols})"

    table = [
        ("u", "u_j", numbers(n_hidden, "j")),
        ("h", "h_j", numbers(n_hidden, "j")),
        ("z", "z_k", numbers(n_out, "k")),
        ("o", "o_k", numbers(n_out, "k")),
        ("loss", "L", "one number"),
        ("grad_w", rf"{d} L / {d} w_{{kj}}", rows(n_out, "k", n_hidden, "j")),
        ("grad_v", rf"{d} L / {d} v_{{ji}}", rows(n_hidden, "j", n_in, "i")),
        ("w_new", r"w^{\text{new}}_{kj}", rows(n_out, "k", n_hidden, "j")),
        ("v_new", r"v^{\text{new}}_{ji}", rows(n_hidden, "j", n_in, "i")),
    ]
    assert tuple(key for key, _, _ in table) == core.ANSWER_KEYS
    return [{"key": key, "math": Safe(math), "shape": shape} for key, math, shape in table]


def _derivation_rows() -> list[dict[str, Any]]:
    """What each key of "derivations" holds: the general entry, a formula in its free letters."""
    d = r"\partial"
    table = [
        ("u", "u_j", "j"),
        ("h", "h_j", "j"),
        ("z", "z_k", "k"),
        ("o", "o_k", "k"),
        ("grad_w", rf"{d} L / {d} w_{{kj}}", "k and j"),
        ("grad_v", rf"{d} L / {d} v_{{ji}}", "j and i"),
    ]
    assert tuple(key for key, _, _ in table) == DERIVATION_KEYS
    return [{"key": key, "math": Safe(math), "letters": letters} for key, math, letters in table]


# The first thing a student reads in their answer file; the grader ignores it. Its example is
# deliberately not an answer to the problem.
SUBMISSION_HELP = (
    "Replace each null. answers: numbers, to 4 decimal places or more; a matrix is a list of its "
    "rows. derivations: formulas as text, in the letters of the problem with 1-based indices, for "
    "example sum(x[i]^2, i) for the sum over i of x_i squared. The problem sheet lists every name "
    "you may use."
)


def blank_submission(params: Params, student_id: str) -> dict[str, Any]:
    """The answer file a student fills in: every answer present, null in the right shape."""
    shapes = answer_shapes(params.sizes)
    return {
        "student_id": student_id,
        "help": SUBMISSION_HELP,
        "answers": {key: np.full(shape, None).tolist() for key, shape in shapes.items()},
        "derivations": {key: None for key in DERIVATION_KEYS},
    }


@functools.lru_cache(maxsize=64)
def _blank_json_around_id(sizes: tuple[int, int, int]) -> tuple[str, str]:
    """The blank answer file's JSON before and after the id, the same for a whole class."""
    text = dumps(blank_submission(Params.checked(*_zeros(sizes)), ""))
    before, after = text.split('""', 1)  # the id is the first string value
    return before, after


def _zeros(sizes: tuple[int, int, int]) -> tuple:
    n_in, n_hidden, n_out = sizes
    return np.zeros(n_in), np.zeros((n_hidden, n_in)), np.zeros((n_out, n_hidden)), np.eye(n_out)[0], 1.0


def blank_submission_json(params: Params, student_id: str) -> str:
    """``dumps(blank_submission(params, student_id))``, fast: a class has thousands of them."""
    before, after = _blank_json_around_id(params.sizes)
    return before + json.dumps(student_id, ensure_ascii=False) + after


# --- Templates --------------------------------------------------------------------------------


def default_templates_dir() -> Path:
    """The shipped templates: grader/templates in an installed wheel, else templates/ of the checkout."""
    package = Path(__file__).resolve().parent
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


def _finalize(escape: Callable[[Any], Safe]) -> Callable[[Any], Any]:
    def finalize(value: Any) -> Any:
        return value if isinstance(value, Safe) else escape(value)

    return finalize


COURSE_FILE = "course.txt"


def _course(env: jinja2.Environment) -> str:
    """The course line, from course.txt (overridable like any template): plain text, escaped on output."""
    import jinja2

    try:
        source = env.loader.get_source(env, COURSE_FILE)[0]  # type: ignore[union-attr]
    except jinja2.TemplateNotFound:
        raise InputError(f"template {COURSE_FILE}", "not found") from None
    return _one_line(source.strip())


# LaTeX is full of {, }, # and %, so its templates use delimiters that never occur in LaTeX.
_TEX_SYNTAX = {
    "block_start_string": "((*",
    "block_end_string": "*))",
    "variable_start_string": "(((",
    "variable_end_string": ")))",
    "comment_start_string": "((=",
    "comment_end_string": "=))",
}


@functools.lru_cache(maxsize=None)
def _loader_class() -> type:
    """jinja2.FileSystemLoader whose template that is not UTF-8 is an InputError naming it
    (built on first use: Jinja is imported only by the commands that render)."""
    import jinja2

    class Utf8Loader(jinja2.FileSystemLoader):
        def get_source(self, environment, template):
            try:
                return super().get_source(environment, template)
            except UnicodeDecodeError as exc:
                # Raised wherever the file is first read (an include deep in another
                # template, course.txt), so the file itself is named, not the one rendered.
                raise InputError(f"template {template}", f"not UTF-8 text (byte {exc.start} is invalid)") from None

    return Utf8Loader


@functools.lru_cache(maxsize=16)
def environment(fmt: str, templates_dir: str | None = None) -> jinja2.Environment:
    """The Jinja environment of one output format; ``templates_dir`` overrides files by name."""
    # Imported here: `hwgen grade` renders no template, and Jinja is a twentieth of a second.
    import jinja2

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    search = [str(default_templates_dir())]
    if templates_dir is not None:
        if not Path(templates_dir).is_dir():
            raise InputError("--templates", f"{templates_dir} is not a directory")
        search.insert(0, str(templates_dir))
    escape = _ESCAPERS[fmt]
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([_loader_class()(path) for path in search]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Jinja's autoescape is HTML's; ours is the finalize below
        auto_reload=False,  # templates do not change during a run; skips a stat per include
        finalize=_finalize(escape),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        **(_TEX_SYNTAX if fmt == "tex" else {}),
    )
    env.filters["escape"] = env.filters["e"] = escape
    env.filters["safe"] = Safe  # marks text as already in the output's syntax, as in HTML Jinja
    env.filters["fixed"] = lambda value, places=4: Safe(fixed(value, places))
    env.filters["code"] = _CODE[fmt]
    env.filters["code_block"] = _CODE_BLOCK[fmt]
    env.globals["course"] = _course(env)
    return env


def render(fmt: str, template: str, context: dict[str, Any], templates_dir: str | Path | None = None) -> str:
    """Render ``template`` (a file name under the template folders); errors name the template."""
    import jinja2

    env = environment(fmt, None if templates_dir is None else str(templates_dir))
    try:
        return env.get_template(template).render(context)
    except InputError:
        raise  # a template that is not UTF-8 (see _loader_class), already named
    except jinja2.TemplateNotFound as exc:
        raise InputError(f"template {template}", f"{exc.message or exc.name} not found") from None
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(f"template {exc.name or template}", f"line {exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise InputError(f"template {template}", exc.message or "uses an undefined variable") from None
    except RecursionError as exc:
        raise InputError(f"template {template}", _endless(_template_frames(env, exc.__traceback__))) from None
    except jinja2.TemplateError as exc:
        raise InputError(f"template {template}", exc.message or type(exc).__name__) from None
    except Exception as exc:
        # An expression of the template itself failed ({{ 1 / 0 }}, a filter given a string,
        # {{ cycler() }}, a string of a trillion characters): the instructor's to fix, at the
        # line named. Raised outside any template's code, it is hwgen's own bug.
        frames = _template_frames(env, exc.__traceback__)
        if not frames:
            raise
        name, line = frames[-1]
        raise InputError(f"template {name}", f"line {line}: {exc} ({type(exc).__name__})") from None


def _template_frames(env: jinja2.Environment, tb: Any) -> list[tuple[str, int]]:
    """(template name, line) of each frame of template code in a traceback, outermost first.
    Jinja rewrites the traceback of an error in a template so that these frames carry the
    template's file name and line."""
    roots = [os.path.join(path, "") for loader in env.loader.loaders for path in loader.searchpath]  # type: ignore[union-attr]
    frames = []
    for frame, line in traceback.walk_tb(tb):
        filename = frame.f_code.co_filename
        root = next((r for r in roots if filename.startswith(r)), None)
        if root is not None and not filename.endswith(".py"):
            frames.append((filename[len(root):].replace(os.sep, "/"), line))
    return frames


def _endless(frames: list[tuple[str, int]]) -> str:
    """What a RecursionError while rendering means: a template that includes itself, directly
    or through others, or a macro that calls itself; the loop, from the frames of the traceback."""
    why = "endless recursion (a template that includes itself, or a macro that calls itself)"
    names = [name for name, _ in frames]
    for end, name in enumerate(names):
        if name in names[:end]:
            start = names.index(name)
            loop = " -> ".join(f"{n} line {line}" for n, line in frames[start:end])
            return f"{why}: {loop} -> {name} again"
    return why


def key_template(fmt: str) -> str:
    return f"key.{fmt}.j2"


def problem_template(fmt: str) -> str:
    return f"problem.{fmt}.j2"


ALL_KEYS_TEMPLATE = "keys_all.tex.j2"


def render_key(
    params: Params,
    student_id: str | None = None,
    fmt: str = "md",
    templates_dir: str | Path | None = None,
    *,
    roster: dict[str, str] | None = None,
    seed_fingerprint: str | None = None,
) -> str:
    """One instance's answer key, a worked model solution of all five parts."""
    worked = solve_batch([params])[0]
    context = key_context(params, worked, student_id, roster, seed_fingerprint)
    return render(fmt, key_template(fmt), context, templates_dir)


def render_problem(
    params: Params,
    student_id: str | None = None,
    fmt: str = "md",
    templates_dir: str | Path | None = None,
    *,
    roster: dict[str, str] | None = None,
) -> str:
    """One student's problem sheet: the HW#2 statement with their numbers, and how to submit."""
    return render(fmt, problem_template(fmt), problem_context(params, student_id, roster), templates_dir)


KEY_BODY_TEMPLATE = "_key_body.tex.j2"


def render_all_keys(contexts: Sequence[dict[str, Any]], templates_dir: str | Path | None = None) -> str:
    """Every key in one LaTeX document, each starting on a new page, for printing."""
    bodies = [Safe(render("tex", KEY_BODY_TEMPLATE, context, templates_dir)) for context in contexts]
    return render("tex", ALL_KEYS_TEMPLATE, {"bodies": bodies}, templates_dir)
