"""Text a user controls (file names, keys, ids, values) as the messages and outputs show it.

A message quotes what it is about, and what it quotes may come from a hostile file or a
careless argument: an escape sequence that would clear a terminal or forge a line, a lone
surrogate that no file can take, a key of thousands of characters. Everything quoted passes
through here, so that it is shown escaped and short, the same way everywhere.
"""

from __future__ import annotations

import os

MAX_SHOWN = 40  # characters of a key or value quoted in a message: enough to recognise it
MAX_SHOWN_PATH = 200  # characters of a path in a message; its two ends are what tell it apart


def escaped(text: str) -> str:
    """``text`` with each character that is not printable (a control character, an escape that
    a terminal would act on, a newline, a lone surrogate, a bidirectional override) written as
    its Python escape, \\x1b, \\n, \\udc80, \\u202e. Printable text, accents and Hangul
    included, is kept as it is, so escaping twice changes nothing."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii") for c in text)


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    """Text from a file for a message: cut to ``limit`` characters (then "...") and escaped."""
    return escaped(text if len(text) <= limit else text[:limit] + "...")


def shown_path(path: str | os.PathLike, limit: int | None = None) -> str:
    """A file's path as the outputs and messages show it: a byte of a name that is not UTF-8
    (held by Python as a lone surrogate, which no JSON reader takes) as \\xff, and anything else
    not printable escaped, so that a file name can neither break a file nor forge a line of a
    message. With ``limit``, a longer path keeps its beginning and its end, joined by "..."."""
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if limit is not None and len(path) > limit:  # cut before escaping, so no escape is cut in two
        path = path[: limit // 2] + "..." + path[-(limit // 2) :]
    if not path.isprintable():  # surrogateescape holds byte 0xff as \udcff
        path = "".join(f"\\x{ord(c) - 0xDC00:02x}" if "\udc80" <= c <= "\udcff" else c for c in path)
    return escaped(path)
