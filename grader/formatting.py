"""Numbers, counts and tables as people read them: fixed decimals, no '-0.0000', Markdown tables, 1 record and 2 records."""

from __future__ import annotations

import numpy as np

from grader.params import Params

DECIMALS = 4  # the precision the problem's own numbers and every answer key use


def fixed(value: float, places: int = DECIMALS) -> str:
    """``value`` to ``places`` decimals, with a negative zero shown as zero."""
    text = f"{float(value):.{places}f}"
    return text[1:] if text.startswith("-") and float(text) == 0.0 else text


def vector(values) -> str:
    """[a, b, c] with fixed decimals."""
    return "[" + ", ".join(fixed(x) for x in np.ravel(values)) + "]"


def markdown_matrix(matrix, row: str, col: str) -> str:
    """A Markdown table of a matrix, rows labelled ``row``=1.., columns ``col``=1.."""
    matrix = np.asarray(matrix)
    head = "| | " + " | ".join(f"{col}={n + 1}" for n in range(matrix.shape[1])) + " |"
    rule = "|---|" + "---:|" * matrix.shape[1]
    body = [f"| {row}={m + 1} | " + " | ".join(fixed(x) for x in r) + " |" for m, r in enumerate(matrix)]
    return "\n".join([head, rule, *body])


def markdown_solution(params: Params, answers: dict[str, np.ndarray]) -> str:
    """The answers of ``hwgen solve --format md``: every quantity to four decimals."""
    n_in, n_hidden, n_out = params.sizes
    lines = [
        f"# Solution ({n_in}-{n_hidden}-{n_out} network, {params.activation} hidden layer, lr {params.lr:g})",
        "",
        "## Forward pass",
        "",
        "| j | u_j | h_j |",
        "|---|---:|---:|",
        *(f"| {j + 1} | {fixed(answers['u'][j])} | {fixed(answers['h'][j])} |" for j in range(n_hidden)),
        "",
        "| k | z_k | o_k |",
        "|---|---:|---:|",
        *(f"| {k + 1} | {fixed(answers['z'][k])} | {fixed(answers['o'][k])} |" for k in range(n_out)),
        "",
        f"Loss L = {fixed(answers['loss'])}",
        "",
        "## dL/dw",
        "",
        markdown_matrix(answers["grad_w"], "k", "j"),
        "",
        "## dL/dv",
        "",
        markdown_matrix(answers["grad_v"], "j", "i"),
        "",
        "## w_new = w - lr dL/dw",
        "",
        markdown_matrix(answers["w_new"], "k", "j"),
        "",
        "## v_new = v - lr dL/dv",
        "",
        markdown_matrix(answers["v_new"], "j", "i"),
    ]
    return "\n".join(lines) + "\n"


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, the noun in the plural unless the count is 1: 1 record, 2 records."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
