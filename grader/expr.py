"""A small, safe expression language for the derivation answers of HW2 (parts 1 and 3).

A student writes the general entry of each derived quantity as text, for example
``sum(v[j,i]*x[i], i)`` for u_j or ``(o[k] - t[k]) * h[j]`` for dL/dw_kj. This module turns
that text into a tree of a few allowed node types and evaluates the tree with NumPy on a batch
of points. Student text is never handed to ``eval``, ``exec``, ``compile`` or any other
evaluator of Python: a hand-written tokenizer and recursive-descent parser accept only the
grammar below, and everything else is an ``ExprError`` with a one-line message and a 1-based
column.

The language
------------
* numbers (``2``, ``0.5``, ``.5``, ``1e-3``), ``+ - * /``, powers ``^`` or ``**``
  (right-associative and binding tighter than a unary sign, as in math: ``-x^2`` is
  ``-(x^2)``, ``2^3^2`` is ``2^9``), unary ``-`` and ``+``, parentheses;
* indexed symbols, 1-based as in the problem: ``x[i]``, ``v[j,i]``, ``w[k,j]``, the target
  ``t[k]`` (``ostar[k]`` is a synonym) and the intermediates ``u[j]``, ``h[j]``, ``z[k]``,
  ``o[k]``. An index is a single letter or a literal positive whole number (``x[2]``);
* ``e`` alone is Euler's number, so ``e^u[j]`` is ``exp(u[j])``. For that reason ``e`` is
  never an index letter; every other single letter may be one;
* functions ``exp``, ``log`` (natural; ``ln`` is a synonym), ``log10``, ``ELU``, ``dELU``
  (ELU's derivative: 1 for u >= 0, e^u for u < 0), ``sigmoid``, ``max(a, b)``, ``min(a, b)``;
* ``sum(EXPR, m)`` adds EXPR over the whole range of the letter ``m``. The range is inferred
  from where ``m`` is used inside (x's index ranges over inputs, u's over hidden units, o's
  over outputs, ...); a letter used in positions of different ranges is an error naming it.
  A sum may rebind a letter that is free outside it (``exp(z[k]) / sum(exp(z[k]), k)``): the
  inner one is the bound one, as in ordinary lexical scoping;
* ``where(A op B, THEN, ELSE)`` with ``op`` one of ``< <= > >= == !=``, for piecewise answers.
  Comparisons are allowed only as the first argument of ``where``.

Names (symbols, functions, ``e``) and index letters are case-insensitive: ``Exp``, ``elu``,
``V[J,I]`` are all fine. Whitespace may appear anywhere between tokens. Implicit
multiplication is not supported: ``2x`` is "missing operator between '2' and 'x'".

Free indices are chosen by the caller: the letters a whole expression is a function of
(``("j", "i")`` for dL/dv_ji). The free letters ``i``, ``j``, ``k`` range over inputs, hidden
units and outputs. Any other letter must be bound by a ``sum``.

Limits (see the named constants below) keep every input cheap: the length is checked before
anything else, parser nesting is counted so that Python's recursion limit is never reached,
the tree's depth and size are bounded, literal numbers and constant exponents are bounded,
and evaluation runs in float64 under ``np.errstate(all="ignore")`` so overflow gives inf/nan
rather than an exception or a hang.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Iterator, Mapping, NamedTuple, Union

import numpy as np

from grader import core

# --- Limits -------------------------------------------------------------------------------

MAX_EXPR_CHARS = 2_000  # longer text is refused before it is tokenized
MAX_DEPTH = 64  # parser nesting and tree depth: far beyond any real answer, far below recursion
MAX_NODES = 500  # numbers, names and operations in one expression
MAX_LITERAL = 1e6  # |n| of a literal number
MAX_LITERAL_DIGITS = 15  # digits in a literal's mantissa: what a float64 holds exactly
MAX_LITERAL_EXPONENT_DIGITS = 3  # digits after the 'e' of scientific notation (1e-300)
MAX_CONSTANT_EXPONENT = 16  # |p| of a power whose exponent contains no symbol (9^9^9 is refused)
MAX_SUM_NESTING = 4  # sums inside sums; each level is an array axis during evaluation

# --- Index kinds, symbols and functions ---------------------------------------------------

INPUT, HIDDEN, OUTPUT = "input", "hidden", "output"
DEFAULT_SIZES: Mapping[str, int] = MappingProxyType({INPUT: 3, HIDDEN: 4, OUTPUT: 2})

# The free letters a caller may ask for, and what they range over.
FREE_INDEX_KINDS: Mapping[str, str] = MappingProxyType({"i": INPUT, "j": HIDDEN, "k": OUTPUT})

# What each index slot of each symbol ranges over; the env arrays have these axes after P.
SYMBOL_SLOTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "x": (INPUT,),
        "v": (HIDDEN, INPUT),
        "w": (OUTPUT, HIDDEN),
        "t": (OUTPUT,),
        "u": (HIDDEN,),
        "h": (HIDDEN,),
        "z": (OUTPUT,),
        "o": (OUTPUT,),
    }
)
SYMBOL_ALIASES: Mapping[str, str] = MappingProxyType({"ostar": "t"})

EULER = "e"

_KIND_RANGE_NAMES = {INPUT: "inputs", HIDDEN: "hidden units", OUTPUT: "outputs"}
_KIND_ADJECTIVES = {INPUT: "an input index", HIDDEN: "a hidden-unit index", OUTPUT: "an output index"}


# The same functions the numeric core uses, so a formula and the key can never disagree on them.
_elu = core.ACTIVATIONS["elu"].f
_elu_derivative = core.ACTIVATIONS["elu"].df
_sigmoid = core.ACTIVATIONS["sigmoid"].f


# Canonical function name -> vectorised implementation (argument counts in _FUNCTION_ARITY).
_FUNCTIONS: Mapping[str, Callable[..., np.ndarray]] = MappingProxyType(
    {
        "exp": np.exp,
        "log": np.log,
        "log10": np.log10,
        "ELU": _elu,
        "dELU": _elu_derivative,
        "sigmoid": _sigmoid,
        "max": np.maximum,
        "min": np.minimum,
    }
)
_FUNCTION_ARITY = MappingProxyType(
    {"exp": 1, "log": 1, "log10": 1, "ELU": 1, "dELU": 1, "sigmoid": 1, "max": 2, "min": 2}
)
# Lower-cased spelling -> canonical name.
_FUNCTION_SPELLINGS = MappingProxyType({**{name.lower(): name for name in _FUNCTIONS}, "ln": "log"})

def _power(base: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """base ^ exponent, NaN for a negative base and an exponent that is not a whole number,
    an infinite base included: NumPy gives inf for (-inf)^0.5 on an array of one element and
    NaN on a longer one (its vectorised loop), so that an answer would depend on the batch."""
    with np.errstate(invalid="ignore"):
        fractional = exponent != np.floor(exponent)
    return np.where((base < 0) & fractional, np.nan, np.power(base, exponent))


_ARITHMETIC: Mapping[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = MappingProxyType(
    {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": _power}
)
_COMPARISONS: Mapping[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = MappingProxyType(
    {
        "<": np.less,
        "<=": np.less_equal,
        ">": np.greater,
        ">=": np.greater_equal,
        "==": np.equal,
        "!=": np.not_equal,
    }
)

# In the order a reader expects: the givens, the target, the intermediates, then functions.
ALLOWED_NAMES: tuple[str, ...] = (
    "x", "v", "w", "t", "ostar", "u", "h", "z", "o", EULER,
    "exp", "log", "ln", "log10", "ELU", "dELU", "sigmoid", "max", "min", "sum", "where",
)  # fmt: skip


# --- Errors -------------------------------------------------------------------------------


class ExprError(ValueError):
    """A problem with an expression's text, as one line that names the column (1-based)."""

    def __init__(self, message: str, column: int | None = None):
        super().__init__(message)
        self.message = message
        self.column = column

    def for_field(self, field_name: str) -> str:
        """The message prefixed with the answer it belongs to: ``grad_v: unexpected ')' ...``."""
        return f"{field_name}: {self.message}"


def _shorten(text: str, limit: int = 24) -> str:
    """Keep echoed student text short so every message stays one readable line."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- The tree -----------------------------------------------------------------------------
# Every node is a frozen dataclass. ``col`` (1-based column of the node's token, used in
# messages) is excluded from equality so that trees compare by meaning.


@dataclass(frozen=True)
class Num:
    """A literal number."""

    value: float
    col: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Const:
    """A named constant; only ``e`` (Euler's number)."""

    name: str
    col: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Sym:
    """An indexed symbol such as ``v[j,2]``; indices are letters or 1-based ints."""

    name: str
    indices: tuple[str | int, ...]
    col: int = field(default=0, compare=False, repr=False)
    index_cols: tuple[int, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Unary:
    """``-operand`` or ``+operand``."""

    op: str
    operand: "Expr"
    col: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Binary:
    """``left op right`` with op one of ``+ - * / ^`` (``**`` is stored as ``^``)."""

    op: str
    left: "Expr"
    right: "Expr"
    col: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Call:
    """A function applied to its arguments; ``func`` is the canonical name (``ELU``)."""

    func: str
    args: tuple["Expr", ...]
    col: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Sum:
    """``sum(body, index)``: body added over the whole range of the letter ``index``."""

    body: "Expr"
    index: str
    col: int = field(default=0, compare=False, repr=False)
    index_col: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Compare:
    """``left op right`` with op one of ``< <= > >= == !=``; only inside ``where``."""

    op: str
    left: "Expr"
    right: "Expr"
    col: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Where:
    """``where(condition, then, otherwise)``, elementwise."""

    condition: Compare
    then: "Expr"
    otherwise: "Expr"
    col: int = field(default=0, compare=False, repr=False)


Expr = Union[Num, Const, Sym, Unary, Binary, Call, Sum, Where]
Node = Union[Expr, Compare]


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, (Unary,)):
        return (node.operand,)
    if isinstance(node, (Binary, Compare)):
        return (node.left, node.right)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Sum):
        return (node.body,)
    if isinstance(node, Where):
        return (node.condition, node.then, node.otherwise)
    return ()


# --- Tokenizer ----------------------------------------------------------------------------

_NUM, _NAME, _OP, _BAD, _END = "number", "name", "operator", "bad", "end"
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")  # index letters, after lower-casing
# Characters that arrive when answers are pasted from typeset math, with what to type instead.
_LOOKALIKES = {
    "\u2212": "-",
    "\u2013": "-",
    "\u00d7": "*",
    "\u00b7": "*",
    "\u22c5": "*",
    "\u00f7": "/",
    "\u2264": "<=",
    "\u2265": ">=",
    "\u2211": "sum(EXPR, m)",
    "\u03a3": "sum(EXPR, m)",  # Greek capital sigma, typed for the summation sign
    "\u03c3": "sigmoid(...)",
    "\u00b2": "^2",
    "\u00b3": "^3",
}
# Other characters students type, with what to do instead (a whole clause, not "type X").
_CHARACTER_HINTS = {
    "\\": "the answer is plain text, not LaTeX: write sum(x[i]^2, i), not \\sum_i x_i^2",
    "{": "group with ( and ), not braces",
    "}": "group with ( and ), not braces",
    "=": "give only the formula, without 'name =' in front; inside where, compare with ==, <= or >=",
    "'": "primes are not read; write the derivative of ELU as dELU(...)",
    "\u2032": "primes are not read; write the derivative of ELU as dELU(...)",  # prime
    "\u2019": "primes are not read; write the derivative of ELU as dELU(...)",  # right single quote
}


class _Token(NamedTuple):  # a tuple: cheap to make 2,000 of
    kind: str
    text: str
    col: int
    index: int  # position in the token list, to look at the previous token in messages
    value: float = 0.0  # numbers only
    error: str = ""  # _BAD only: the message to raise if the parser ever reaches it

    @property
    def starts_operand(self) -> bool:
        return self.kind in (_NUM, _NAME) or (self.kind == _OP and self.text == "(")

    @property
    def ends_operand(self) -> bool:
        return self.kind in (_NUM, _NAME) or (self.kind == _OP and self.text in (")", "]"))

    def shown(self) -> str:
        return "end of expression" if self.kind == _END else f"'{_shorten(self.text)}'"


def _describe_bad_character(char: str, col: int) -> str:
    if char.isascii() and char.isprintable():
        shown = f"'{char}'" if char != "'" else '"\'"'
    else:
        shown = f"U+{ord(char):04X}" + (f" {char!r}" if char.isprintable() else "")
    message = f"unexpected character {shown} at column {col}"
    if char in _LOOKALIKES:
        message += f"; type {_LOOKALIKES[char]} instead"
    elif char in _CHARACTER_HINTS:
        message += f"; {_CHARACTER_HINTS[char]}"
    return message


# One alternative per token kind. Explicit ASCII classes: str.isdigit() and \d would accept
# '²' and other scripts' digits. Scientific notation needs digits after the 'e', so '2e' is
# the number 2 followed by Euler's e (and then a "missing operator" error).
_TOKEN_PATTERN = re.compile(
    r"""
      (?P<space>[ \t\r\n]+)
    | (?P<number>(?P<mantissa>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?(?P<exponent>[0-9]+))?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<operator>\*\*|<=|>=|==|!=|[-+*/^()\[\],<>])
    """,
    re.VERBOSE,
)


def _number_problem(match: re.Match, col: int) -> str:
    """Why a number literal is refused, or "" if it is fine."""
    mantissa_digits = len(match["mantissa"].replace(".", ""))
    if mantissa_digits > MAX_LITERAL_DIGITS:
        return f"number at column {col} has more than {MAX_LITERAL_DIGITS} digits"
    if match["exponent"] and len(match["exponent"]) > MAX_LITERAL_EXPONENT_DIGITS:
        return f"number at column {col} has too large an exponent"
    if float(match["number"]) > MAX_LITERAL:  # float() of a validated decimal literal
        return f"number {_shorten(match['number'])} at column {col} is too large (the limit is {MAX_LITERAL:,.0f})"
    return ""


def _tokenize(text: str) -> Iterator[_Token]:
    """Yield the tokens of ``text``, ending with an _END token. A refused character or number
    becomes a _BAD token that ends the stream instead, so that errors are reported in reading
    order (the parser raises when it gets there). Lazy: the parser stops reading at its first
    error, so deeply nested input costs only as many tokens as the nesting limit."""
    count = 0
    pos = 0
    while pos < len(text):
        match = _TOKEN_PATTERN.match(text, pos)
        col = pos + 1
        if match is None:
            yield _Token(_BAD, text[pos], col, count, error=_describe_bad_character(text[pos], col))
            return
        kind = match.lastgroup  # the outer group closes last, so a number's kind is "number"
        pos = match.end()
        if kind == "space":
            continue
        if kind == "number":
            problem = _number_problem(match, col)
            if problem:
                yield _Token(_BAD, match[0], col, count, error=problem)
                return
            yield _Token(_NUM, match[0], col, count, value=float(match[0]))
        else:
            yield _Token(_NAME if kind == "name" else _OP, match[0], col, count)
        count += 1
    yield _Token(_END, "", len(text) + 1, count)


# --- Parser -------------------------------------------------------------------------------

_SYMBOL_HINT = re.compile(r"^(ostar|[xvwtuhzo])_?([a-df-z0-9]+)$")


_DERIVATIVE_NAME = re.compile(r"^(d_?elu(_?du)?|elu_?(prime|deriv|derivative|grad|d))$")


def _unknown_name_message(token: _Token) -> str:
    message = f"unknown name '{_shorten(token.text)}' at column {token.col} ("
    hint = _SYMBOL_HINT.match(token.text.lower())
    if _DERIVATIVE_NAME.match(token.text.lower()):
        message += "did you mean dELU(...)? "
    elif hint:
        symbol, rest = hint.groups()
        arity = len(SYMBOL_SLOTS[SYMBOL_ALIASES.get(symbol, symbol)])
        indices = [rest] if rest.isdigit() and arity == 1 else list(rest)
        if len(indices) == arity:
            message += f"did you mean {symbol}[{','.join(indices)}]? "
    return message + f"allowed: {', '.join(ALLOWED_NAMES)})"


def _plural(count: int, word: str) -> str:
    plural = "indices" if word == "index" else word + "s"
    return f"{count} {word if count == 1 else plural}"


class _Parser:
    """Recursive descent over the token list.

    Grammar, loosest binding first::

        expression := term (('+' | '-') term)*
        term       := unary (('*' | '/') unary)*
        unary      := ('-' | '+') unary | power
        power      := primary (('^' | '**') unary)?
        primary    := NUMBER | 'e' | SYMBOL '[' index (',' index)* ']'
                    | FUNCTION '(' expression (',' expression)* ')'
                    | 'sum' '(' expression ',' LETTER ')'
                    | 'where' '(' condition ',' expression ',' expression ')'
                    | '(' expression ')'
        condition  := expression ('<' | '<=' | '>' | '>=' | '==' | '!=') expression

    Every recursive path goes through ``_unary``, which counts nesting and stops at
    MAX_DEPTH, so deeply nested input is an ExprError long before Python's recursion limit.
    Chains such as ``a + b + c`` are loops, not recursion.
    """

    def __init__(self, text: str):
        self._stream = _tokenize(text)
        self._tokens: list[_Token] = []  # read so far; the previous token is kept for messages
        self._pos = 0
        self._nesting = 0

    # -- token helpers

    def _peek(self) -> _Token:
        if self._pos == len(self._tokens):
            self._tokens.append(next(self._stream))
        return self._tokens[self._pos]

    def _advance(self) -> _Token:
        token = self._peek()
        if token.kind not in (_END, _BAD):
            self._pos += 1
        return token

    def _at(self, *operators: str) -> bool:
        token = self._peek()
        return token.kind == _OP and token.text in operators

    def _expect(self, operator: str) -> _Token:
        if not self._at(operator):
            raise self._unexpected(self._peek(), expected=f"'{operator}'")
        return self._advance()

    def _unexpected(self, token: _Token, expected: str = "") -> ExprError:
        """The most helpful message for a token the grammar does not allow here."""
        if token.kind == _BAD:
            return ExprError(token.error, token.col)
        previous = self._tokens[token.index - 1] if token.index > 0 else None
        if previous is not None and previous.ends_operand and token.starts_operand:
            return ExprError(
                f"missing operator between {previous.shown()} and {token.shown()} at column {token.col}",
                token.col,
            )
        if token.kind == _OP and token.text in _COMPARISONS:
            return ExprError(
                f"comparison '{token.text}' at column {token.col} is only allowed as the first "
                f"argument of where(...)",
                token.col,
            )
        message = f"unexpected {token.shown()} at column {token.col}"
        if expected:
            message += f" (expected {expected})"
        return ExprError(message, token.col)

    # -- grammar

    def parse(self) -> Expr:
        if self._peek().kind == _END:
            raise ExprError("expression is empty", 1)
        tree = self._expression()
        if self._peek().kind != _END:
            raise self._unexpected(self._peek())
        return tree

    def _expression(self) -> Expr:
        node = self._term()
        for length in itertools.count(1):
            if not self._at("+", "-"):
                return node
            operator = self._check_chain(self._advance(), length)
            node = Binary(operator.text, node, self._term(), col=operator.col)

    def _term(self) -> Expr:
        node = self._unary()
        for length in itertools.count(1):
            if not self._at("*", "/"):
                return node
            operator = self._check_chain(self._advance(), length)
            node = Binary(operator.text, node, self._unary(), col=operator.col)

    @staticmethod
    def _check_chain(operator: _Token, length: int) -> _Token:
        """A chain a + b + c ... is a left-leaning tree as deep as it is long. The tree-size
        check after parsing would refuse it anyway; stopping here saves reading the rest."""
        if length > MAX_DEPTH:
            raise _too_many_levels(operator.col)
        return operator

    def _unary(self) -> Expr:
        token = self._peek()
        self._nesting += 1
        try:
            if self._nesting > MAX_DEPTH:
                raise ExprError(
                    f"expression is nested too deeply at column {token.col} (the limit is {MAX_DEPTH} levels)",
                    token.col,
                )
            if self._at("-", "+"):
                self._advance()
                return Unary(token.text, self._unary(), col=token.col)
            return self._power()
        finally:
            self._nesting -= 1

    def _power(self) -> Expr:
        base = self._primary()
        if self._at("^", "**"):
            operator = self._advance()
            # The exponent is a unary: 2^-1 works and 2^3^2 groups to the right.
            return Binary("^", base, self._unary(), col=operator.col)
        return base

    def _primary(self) -> Expr:
        token = self._peek()
        if token.kind == _NUM:
            self._advance()
            return Num(token.value, col=token.col)
        if token.kind == _NAME:
            self._advance()
            return self._named(token)
        if self._at("("):
            self._advance()
            inner = self._expression()
            self._expect(")")
            return inner
        raise self._unexpected(token)

    def _condition(self) -> Compare:
        left = self._expression()
        operator = self._peek()
        if not (operator.kind == _OP and operator.text in _COMPARISONS):
            if operator.kind == _BAD:
                raise self._unexpected(operator)
            raise ExprError(
                f"the first argument of where must be a comparison such as u[j] >= 0; "
                f"found {operator.shown()} at column {operator.col}",
                operator.col,
            )
        self._advance()
        return Compare(operator.text, left, self._expression(), col=operator.col)

    def _named(self, token: _Token) -> Expr:
        name = token.text.lower()
        if name == EULER:
            if self._at("[", "("):
                raise ExprError(
                    f"'e' at column {token.col} is Euler's number; it takes no index or argument",
                    token.col,
                )
            return Const(EULER, col=token.col)
        if name in SYMBOL_SLOTS or name in SYMBOL_ALIASES:
            return self._symbol(token, SYMBOL_ALIASES.get(name, name))
        if name == "sum":
            return self._sum(token)
        if name == "where":
            return self._where(token)
        if name in _FUNCTION_SPELLINGS:
            return self._call(token, _FUNCTION_SPELLINGS[name])
        raise ExprError(_unknown_name_message(token), token.col)

    def _index_letter(self, token: _Token) -> str:
        letter = token.text.lower()
        if letter == EULER:
            raise ExprError(
                f"'e' at column {token.col} is Euler's number and cannot be an index letter",
                token.col,
            )
        if len(letter) != 1 or letter not in _LETTERS:
            raise ExprError(
                f"index '{_shorten(token.text)}' at column {token.col} must be a single letter or "
                f"a whole number (separate indices with commas, as in v[j,i])",
                token.col,
            )
        return letter

    def _list_items(self, closer: str):
        """Drive a comma-separated list up to ``closer``: yields once per item, with the
        item's first token, for the caller to parse it; consumes the commas and the closer."""
        if not self._at(closer):
            while True:
                yield self._peek()
                if not self._at(","):
                    break
                self._advance()
        if not self._at(closer):
            raise self._unexpected(self._peek(), expected=f"',' or '{closer}'")
        self._advance()

    def _index(self, token: _Token) -> str | int:
        """One index of a symbol: a letter or a literal positive whole number."""
        self._advance()
        if token.kind == _NAME:
            return self._index_letter(token)
        if token.kind == _NUM and token.text.isdigit():
            return int(token.text)
        if token.kind == _NUM:
            raise ExprError(
                f"index '{_shorten(token.text)}' at column {token.col} must be a "
                f"letter or a positive whole number",
                token.col,
            )
        raise self._unexpected(token, expected="an index letter or number")

    def _symbol(self, token: _Token, name: str) -> Sym:
        arity = len(SYMBOL_SLOTS[name])
        if not self._at("["):
            if self._at("("):
                raise ExprError(
                    f"{token.text} at column {token.col} is not a function; index it with square "
                    f"brackets, {token.text}[...]",
                    token.col,
                )
            if name == "o" and self._at("*"):
                raise ExprError(
                    f"o* at column {token.col} is read as o times something; write the target o*_k as t[k] "
                    f"(or ostar[k])",
                    token.col,
                )
            raise ExprError(f"{token.text} takes {_plural(arity, 'index')}, got 0 at column {token.col}", token.col)
        self._advance()
        indices: list[str | int] = []
        columns: list[int] = []
        for index_token in self._list_items("]"):
            indices.append(self._index(index_token))
            columns.append(index_token.col)
            if self._at(*_ARITHMETIC, "**"):
                operator = self._peek()
                raise ExprError(
                    f"'{operator.text}' at column {operator.col}: an index is a single letter or a whole "
                    f"number; arithmetic on indices such as z[3-k] is not supported (write the terms out "
                    f"with whole numbers, z[1] and z[2])",
                    operator.col,
                )
        if len(indices) != arity and self._at("["):
            raise ExprError(
                f"{token.text} takes {_plural(arity, 'index')} in one pair of brackets, separated by "
                f"commas, as in v[j,i] (column {token.col})",
                token.col,
            )
        if len(indices) != arity:
            raise ExprError(
                f"{token.text} takes {_plural(arity, 'index')}, got {len(indices)} at column {token.col}",
                token.col,
            )
        return Sym(name, tuple(indices), col=token.col, index_cols=tuple(columns))

    def _open_call(self, token: _Token) -> None:
        if self._peek().kind == _BAD:  # ELU'(u[j]): the character's own message says more
            raise self._unexpected(self._peek())
        if not self._at("("):
            raise ExprError(
                f"{token.text} at column {token.col} must be followed by '(' (found {self._peek().shown()})",
                token.col,
            )
        self._advance()

    def _call(self, token: _Token, func: str) -> Call:
        self._open_call(token)
        arguments = [self._expression() for _ in self._list_items(")")]
        arity = _FUNCTION_ARITY[func]
        if len(arguments) != arity:
            raise ExprError(
                f"{func} takes {_plural(arity, 'argument')}, got {len(arguments)} at column {token.col}",
                token.col,
            )
        return Call(func, tuple(arguments), col=token.col)

    def _sum(self, token: _Token) -> Sum:
        self._open_call(token)
        body = self._expression()
        if self._at(")"):
            raise ExprError(
                f"sum takes 2 arguments, sum(EXPR, m), got 1 at column {token.col}", token.col
            )
        self._expect(",")
        index_token = self._peek()
        if index_token.kind != _NAME:
            if index_token.kind == _BAD:
                raise self._unexpected(index_token)
            raise ExprError(
                f"the second argument of sum must be an index letter; found {index_token.shown()} "
                f"at column {index_token.col}",
                index_token.col,
            )
        self._advance()
        letter = self._index_letter(index_token)
        if self._peek().kind == _BAD and self._peek().text == "=":
            raise ExprError(
                f"'=' at column {self._peek().col}: the second argument of sum is only the letter, "
                f"as in sum(x[i]^2, i); its range is known from where the letter is used",
                self._peek().col,
            )
        if self._at(","):
            raise ExprError(
                f"sum takes 2 arguments, sum(EXPR, m), got more at column {token.col}", token.col
            )
        self._expect(")")
        return Sum(body, letter, col=token.col, index_col=index_token.col)

    def _where(self, token: _Token) -> Where:
        self._open_call(token)
        condition = self._condition()
        branches: list[Expr] = []
        while self._at(","):
            self._advance()
            branches.append(self._expression())
        if len(branches) != 2:
            if self._at(")") or len(branches) > 2:
                raise ExprError(
                    f"where takes 3 arguments, where(CONDITION, THEN, ELSE), got {1 + len(branches)} "
                    f"at column {token.col}",
                    token.col,
                )
            raise self._unexpected(self._peek(), expected="','")
        self._expect(")")
        return Where(condition, branches[0], branches[1], col=token.col)


# --- Checks after parsing -----------------------------------------------------------------


def _too_many_levels(column: int) -> ExprError:
    return ExprError(
        f"expression has too many levels of operations at column {column} (the limit is {MAX_DEPTH})",
        column,
    )


def _check_tree_size(root: Node) -> None:
    """Depth and node count, walked with an explicit stack: a 1,000-term chain is refused
    without recursing 1,000 levels."""
    stack: list[tuple[Node, int]] = [(root, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_many_levels(node.col)
        count += 1
        if count > MAX_NODES:
            raise ExprError(
                f"expression is too large: more than {MAX_NODES} numbers, names and operations"
            )
        stack.extend((child, depth + 1) for child in _children(node))


def _check_free(free: tuple[str, ...]) -> None:
    """Free letters are the caller's choice; a bad choice is a programming error."""
    if len(set(free)) != len(free) or any(letter not in FREE_INDEX_KINDS for letter in free):
        raise ValueError(f"free indices must be distinct letters among {sorted(FREE_INDEX_KINDS)}, got {free!r}")


def _describe_range(kind: str, sizes: Mapping[str, int]) -> str:
    return f"{_KIND_RANGE_NAMES[kind]} (1..{sizes[kind]})"


def _slot_name(symbol: str, slot: int) -> str:
    """'o's index' or 'v's second index', for messages."""
    if len(SYMBOL_SLOTS[symbol]) == 1:
        return f"{symbol}'s index"
    return f"{symbol}'s {('first', 'second')[slot]} index"


def _uses_of(letter: str, node: Node) -> list[tuple[str, Sym, int]]:
    """(kind, symbol, slot) of every use of ``letter`` in ``node``, skipping inner sums that
    rebind it."""
    uses: list[tuple[str, Sym, int]] = []
    if isinstance(node, Sym):
        for slot, index in enumerate(node.indices):
            if index == letter:
                uses.append((SYMBOL_SLOTS[node.name][slot], node, slot))
        return uses
    if isinstance(node, Sum) and node.index == letter:
        return uses
    for child in _children(node):
        uses.extend(_uses_of(letter, child))
    return uses


def _is_constant(node: Node) -> bool:
    """No symbol anywhere below: the value is the same at every point."""
    return not isinstance(node, Sym) and all(_is_constant(child) for child in _children(node))


class _Checker:
    """Index scoping, ranges, literal indices and constant exponents of a size-checked tree.

    Recursion here is safe: _check_tree_size has bounded the depth by MAX_DEPTH. The range
    inferred for each sum's letter is kept for the evaluator (keyed by the Sum node's id).
    """

    def __init__(self, free: tuple[str, ...], sizes: Mapping[str, int]):
        self.free = free
        self.sizes = sizes
        self.bound_kinds: dict[int, str] = {}
        self.max_sum_nesting = 0

    def check(self, root: Expr) -> None:
        self._visit(root, {letter: FREE_INDEX_KINDS[letter] for letter in self.free}, 0)

    def _visit(self, node: Node, scope: Mapping[str, str], sum_nesting: int) -> None:
        if isinstance(node, Sym):
            self._check_symbol(node, scope)
            return
        if isinstance(node, Sum):
            nesting = sum_nesting + 1
            if nesting > MAX_SUM_NESTING:
                raise ExprError(
                    f"sums are nested too deeply at column {node.col} (the limit is {MAX_SUM_NESTING})",
                    node.col,
                )
            self.max_sum_nesting = max(self.max_sum_nesting, nesting)
            kind = self._bound_kind(node)
            self.bound_kinds[id(node)] = kind
            self._visit(node.body, {**scope, node.index: kind}, nesting)
            return
        for child in _children(node):
            self._visit(child, scope, sum_nesting)
        if isinstance(node, Binary) and node.op == "^":
            self._check_constant_exponent(node)

    def _check_symbol(self, node: Sym, scope: Mapping[str, str]) -> None:
        columns = node.index_cols or (node.col,) * len(node.indices)  # hand-built trees lack them
        for slot, (index, column) in enumerate(zip(node.indices, columns)):
            kind = SYMBOL_SLOTS[node.name][slot]
            if isinstance(index, int):
                if not 1 <= index <= self.sizes[kind]:
                    raise ExprError(
                        f"index {index} out of range 1..{self.sizes[kind]} for {node.name} at column {column}",
                        column,
                    )
            elif index not in scope:
                raise ExprError(self._not_allowed_message(index, column), column)
            elif scope[index] != kind:
                raise ExprError(
                    f"index '{index}' at column {column} ranges over {_describe_range(scope[index], self.sizes)}, "
                    f"but {_slot_name(node.name, slot)} ranges over {_describe_range(kind, self.sizes)}",
                    column,
                )

    def _not_allowed_message(self, letter: str, column: int) -> str:
        if self.free:
            allowed = f"free indices: {', '.join(self.free)}; bind others with sum(..., {letter})"
        else:
            allowed = f"no free indices here; bind indices with sum(..., {letter})"
        return f"index '{letter}' at column {column} is not allowed here ({allowed})"

    def _bound_kind(self, node: Sum) -> str:
        uses = _uses_of(node.index, node.body)
        if not uses:
            raise ExprError(
                f"index '{node.index}' of the sum at column {node.col} is not used inside the sum, "
                f"so its range is unknown",
                node.col,
            )
        first_kind, first_symbol, _ = uses[0]
        for kind, symbol, _ in uses[1:]:
            if kind != first_kind:
                raise ExprError(
                    f"index '{node.index}' of the sum at column {node.col} is used both as "
                    f"{_KIND_ADJECTIVES[first_kind]} ({first_symbol.name} at column {first_symbol.col}) "
                    f"and as {_KIND_ADJECTIVES[kind]} ({symbol.name} at column {symbol.col})",
                    node.col,
                )
        return first_kind

    def _check_constant_exponent(self, node: Binary) -> None:
        # Children were checked first, so an inner 9^9 is reported before the outer 9^(9^9).
        if not _is_constant(node.right):
            return
        exponent = _constant_value(node.right)
        if not np.isfinite(exponent) or abs(exponent) > MAX_CONSTANT_EXPONENT:
            raise ExprError(
                f"exponent {exponent:g} of '^' at column {node.col} is too large "
                f"(a constant exponent must be between -{MAX_CONSTANT_EXPONENT} and {MAX_CONSTANT_EXPONENT})",
                node.col,
            )


def _constant_value(node: Expr) -> float:
    """The value of a symbol-free subtree, computed as the evaluator would."""
    evaluator = _Evaluator(env={}, sizes={}, axis_count=0, bound_kinds={})
    with np.errstate(all="ignore"):
        return float(evaluator.value(node, {}, 0).reshape(-1)[0])


def _check(expr: Expr, free: tuple[str, ...], sizes: Mapping[str, int]) -> _Checker:
    _check_tree_size(expr)
    checker = _Checker(free, sizes)
    checker.check(expr)
    return checker


# --- Public API: parse --------------------------------------------------------------------


def parse(text: str, free: tuple[str, ...] = (), sizes: Mapping[str, int] = DEFAULT_SIZES) -> Expr:
    """Parse and validate one expression.

    ``free`` lists the letters the expression is a function of (``("j", "i")`` for dL/dv_ji),
    each one of ``i``, ``j``, ``k``. ``sizes`` gives the number of inputs, hidden units and
    outputs (keys INPUT, HIDDEN, OUTPUT), used to check literal indices such as ``x[5]``.
    Returns the tree; raises ExprError (one line, with a column) for anything else.
    """
    free = tuple(free)
    _check_free(free)
    if not isinstance(text, str):
        raise ExprError(f"expected the expression as text, got {type(text).__name__}")
    if len(text) > MAX_EXPR_CHARS:
        raise ExprError(f"expression is {len(text):,} characters; the limit is {MAX_EXPR_CHARS:,}")
    tree = _Parser(text).parse()
    _check(tree, free, sizes)
    return tree


def symbols(expr: Node) -> tuple[Sym, ...]:
    """Every indexed symbol in the tree, in reading order (by column)."""
    found: list[Sym] = []
    stack: list[Node] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Sym):
            found.append(node)
        stack.extend(_children(node))
    return tuple(sorted(found, key=lambda node: node.col))


# --- Public API: evaluate -----------------------------------------------------------------


def sizes_of(env: Mapping[str, np.ndarray]) -> tuple[int, dict[str, int]]:
    """(P, {INPUT: I, HIDDEN: J, OUTPUT: K}) read off the env arrays' shapes.

    Raises ValueError when the arrays disagree or a size cannot be told.
    """
    points: int | None = None
    sizes: dict[str, int] = {}
    for name, slots in SYMBOL_SLOTS.items():
        if name not in env:
            continue
        shape = np.shape(env[name])
        if len(shape) != 1 + len(slots):
            raise ValueError(f"env[{name!r}] should have {1 + len(slots)} axes (P, ...), got shape {shape}")
        if points is None:
            points = shape[0]
        if shape[0] != points:
            raise ValueError(f"env[{name!r}] has {shape[0]} points, others have {points}")
        for kind, size in zip(slots, shape[1:]):
            if sizes.setdefault(kind, size) != size:
                raise ValueError(f"env[{name!r}] says there are {size} {_KIND_RANGE_NAMES[kind]}, others {sizes[kind]}")
    missing = [kind for kind in (INPUT, HIDDEN, OUTPUT) if kind not in sizes]
    if points is None or missing:
        raise ValueError(f"env does not tell the number of points and of {', '.join(missing) or 'anything'}")
    return points, sizes


class _Evaluator:
    """Evaluates a checked tree on P points at once.

    Every intermediate value is an array of shape (P, d_0, ..., d_{A-1}) with one axis per
    index letter in scope: the free letters first, then one axis per level of sum nesting
    (sibling sums reuse their level's axis, which is summed back to size 1). d_a is 1 where
    the value does not depend on that letter, so NumPy broadcasting does the index algebra.
    """

    def __init__(
        self,
        env: Mapping[str, np.ndarray],
        sizes: Mapping[str, int],
        axis_count: int,
        bound_kinds: Mapping[int, str],
        free_count: int = 0,
    ):
        self.env = env
        self.sizes = sizes
        self.axis_count = axis_count
        self.bound_kinds = bound_kinds
        self.free_count = free_count

    def value(self, node: Node, scope: Mapping[str, int], sum_nesting: int) -> np.ndarray:
        """``scope`` maps each index letter to its axis (0-based, after the point axis)."""
        if isinstance(node, Num):
            return self._constant(node.value)
        if isinstance(node, Const):
            return self._constant(np.e)
        if isinstance(node, Sym):
            return self._symbol(node, scope)
        if isinstance(node, Unary):
            operand = self.value(node.operand, scope, sum_nesting)
            return -operand if node.op == "-" else operand
        if isinstance(node, Binary):
            left = self.value(node.left, scope, sum_nesting)
            return _ARITHMETIC[node.op](left, self.value(node.right, scope, sum_nesting))
        if isinstance(node, Compare):
            left = self.value(node.left, scope, sum_nesting)
            return _COMPARISONS[node.op](left, self.value(node.right, scope, sum_nesting))
        if isinstance(node, Call):
            return _FUNCTIONS[node.func](*(self.value(arg, scope, sum_nesting) for arg in node.args))
        if isinstance(node, Where):
            condition = self.value(node.condition, scope, sum_nesting)
            then = self.value(node.then, scope, sum_nesting)
            return np.where(condition, then, self.value(node.otherwise, scope, sum_nesting))
        if isinstance(node, Sum):
            return self._sum(node, scope, sum_nesting)
        raise TypeError(f"not an expression node: {type(node).__name__}")

    def _constant(self, number: float) -> np.ndarray:
        return np.full((1,) * (1 + self.axis_count), number, dtype=np.float64)

    def _symbol(self, node: Sym, scope: Mapping[str, int]) -> np.ndarray:
        if node.name not in self.env:
            raise ValueError(f"env has no array for {node.name!r}")
        array = self.env[node.name]
        selector: list[slice | int] = [slice(None)]
        letter_axes: list[int] = []
        for index in node.indices:
            if isinstance(index, int):
                selector.append(index - 1)
            else:
                selector.append(slice(None))
                letter_axes.append(scope[index])
        picked = array[tuple(selector)]  # (P, one axis per letter index, in slot order)
        # Put the letter axes in ascending axis order, then insert size-1 axes elsewhere.
        order = sorted(range(len(letter_axes)), key=letter_axes.__getitem__)
        picked = picked.transpose((0, *(1 + position for position in order)))
        shape = [picked.shape[0]] + [1] * self.axis_count
        for position, axis in enumerate(sorted(letter_axes)):
            shape[1 + axis] = picked.shape[1 + position]
        return picked.reshape(shape)

    def _sum(self, node: Sum, scope: Mapping[str, int], sum_nesting: int) -> np.ndarray:
        axis = self.free_count + sum_nesting
        body = self.value(node.body, {**scope, node.index: axis}, sum_nesting + 1)
        size = self.sizes[self.bound_kinds[id(node)]]
        if body.shape[1 + axis] != size:  # a body constant along its own letter still counts n times
            shape = list(body.shape)
            shape[1 + axis] = size
            body = np.broadcast_to(body, shape)
        return np.sum(body, axis=1 + axis, keepdims=True)


def evaluate(expr: Expr, env: Mapping[str, np.ndarray], free: tuple[str, ...] = ()) -> np.ndarray:
    """Evaluate a parsed expression at P points at once, fully vectorised.

    ``env`` maps symbol names (x, v, w, t, u, h, z, o) to float arrays with a leading axis of
    P points: x (P, I), v (P, J, I), w (P, K, J), t (P, K), u (P, J), h (P, J), z (P, K),
    o (P, K); only the ones the expression uses are needed, but the sizes of the free indices
    must be readable from them. Returns a new float64 array of shape (P, *sizes of ``free``),
    e.g. (P, J, I) for free ``("j", "i")``. Overflow, 0/0 and log of negatives give inf or nan,
    never an exception. Raises ExprError if a literal index is out of range for these sizes.
    """
    free = tuple(free)
    _check_free(free)
    points, sizes = sizes_of(env)
    checker = _check(expr, free, sizes)
    arrays = {name: np.asarray(array, dtype=np.float64) for name, array in env.items() if name in SYMBOL_SLOTS}
    axis_count = len(free) + checker.max_sum_nesting
    evaluator = _Evaluator(arrays, sizes, axis_count, checker.bound_kinds, free_count=len(free))
    free_sizes = tuple(sizes[FREE_INDEX_KINDS[letter]] for letter in free)
    with np.errstate(all="ignore"):
        result = evaluator.value(expr, {letter: axis for axis, letter in enumerate(free)}, 0)
        # Bound axes were summed to size 1; broadcasting fills in letters the answer ignores.
        full = np.broadcast_to(result, (points, *free_sizes, *(1,) * checker.max_sum_nesting))
        return np.array(full.reshape((points, *free_sizes)), dtype=np.float64)


# --- Public API: to_text ------------------------------------------------------------------

_ADDITIVE, _MULTIPLICATIVE, _UNARY, _POWER, _ATOM = 1, 2, 3, 4, 5
_BINARY_PRECEDENCE = {"+": _ADDITIVE, "-": _ADDITIVE, "*": _MULTIPLICATIVE, "/": _MULTIPLICATIVE}


def _number_text(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _formatted(node: Node) -> tuple[str, int]:
    """(text, precedence of its outermost operation)."""
    if isinstance(node, Num):
        return _number_text(node.value), _ATOM
    if isinstance(node, Const):
        return node.name, _ATOM
    if isinstance(node, Sym):
        return f"{node.name}[{','.join(str(index) for index in node.indices)}]", _ATOM
    if isinstance(node, Call):
        return f"{node.func}({', '.join(to_text(arg) for arg in node.args)})", _ATOM
    if isinstance(node, Sum):
        return f"sum({to_text(node.body)}, {node.index})", _ATOM
    if isinstance(node, Where):
        parts = (to_text(node.condition), to_text(node.then), to_text(node.otherwise))
        return f"where({', '.join(parts)})", _ATOM
    if isinstance(node, Compare):
        return f"{to_text(node.left)} {node.op} {to_text(node.right)}", 0
    if isinstance(node, Unary):
        return f"{node.op}{_wrapped(node.operand, _UNARY)}", _UNARY
    if isinstance(node, Binary) and node.op == "^":
        # The base must be an atom ((-2)^2); the exponent is parsed as a unary (2^-1).
        return f"{_wrapped(node.left, _ATOM)}^{_wrapped(node.right, _UNARY)}", _POWER
    if isinstance(node, Binary):
        precedence = _BINARY_PRECEDENCE[node.op]
        # Left-associative: an equal-precedence right operand needs parentheses, a - (b - c).
        left = _wrapped(node.left, precedence)
        right = _wrapped(node.right, precedence + 1)
        return f"{left} {node.op} {right}", precedence
    raise TypeError(f"not an expression node: {type(node).__name__}")


def _wrapped(node: Node, minimum_precedence: int) -> str:
    text, precedence = _formatted(node)
    return text if precedence >= minimum_precedence else f"({text})"


def to_text(expr: Node) -> str:
    """The expression as canonical text that parses back to an equal tree."""
    return _formatted(expr)[0]


__all__ = [
    "ALLOWED_NAMES",
    "DEFAULT_SIZES",
    "FREE_INDEX_KINDS",
    "HIDDEN",
    "INPUT",
    "OUTPUT",
    "MAX_CONSTANT_EXPONENT",
    "MAX_DEPTH",
    "MAX_EXPR_CHARS",
    "MAX_LITERAL",
    "MAX_LITERAL_DIGITS",
    "MAX_LITERAL_EXPONENT_DIGITS",
    "MAX_NODES",
    "MAX_SUM_NESTING",
    "SYMBOL_ALIASES",
    "SYMBOL_SLOTS",
    "Binary",
    "Call",
    "Compare",
    "Const",
    "Expr",
    "ExprError",
    "Num",
    "Sum",
    "Sym",
    "Unary",
    "Where",
    "evaluate",
    "parse",
    "sizes_of",
    "symbols",
    "to_text",
]
