"""The one exception type the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations


class InfnetError(Exception):
    """A user-facing error: bad input, a missing file, an unknown name.

    The message should name the file or value at fault and the problem, in one line.
    """
