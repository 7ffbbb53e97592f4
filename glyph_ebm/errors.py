"""User-facing errors.

Every problem a user can fix themselves (a wrong path, a corrupt image, an unknown option, a
checkpoint that does not fit) is raised as :class:`GlyphEBMError`. Its message is one line that
names the problem and what to do about it. Command-line entry points run their work through
:func:`run_command`, which prints ``error: <message>`` and exits with status 2, so users never
see a deep traceback for their own mistakes.
"""
from __future__ import annotations

import sys
from typing import Callable

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class GlyphEBMError(Exception):
    """A problem with the user's input, stated in one actionable line."""


class DataError(GlyphEBMError):
    """The data folder or one of its images cannot be used."""


class ConfigError(GlyphEBMError):
    """An option, profile or mode has a value we do not know."""


class CheckpointError(GlyphEBMError):
    """A checkpoint cannot be read or does not fit the current model/data."""


def run_command(job: Callable[[], int | None], interrupted: str | None = None) -> int:
    """Run a command's ``job`` and turn how it ends into an exit status: what ``job`` returns
    (``None`` = 0); 2 with ``error: <message>`` for a :class:`GlyphEBMError`; 130 after Ctrl-C,
    with the hint ``interrupted`` (e.g. how to continue) when given."""
    try:
        status = job()
    except GlyphEBMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        if interrupted is None:
            raise
        print(f"interrupted; {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0 if status is None else int(status)
