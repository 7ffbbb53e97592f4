"""What every long, resumable command (``compress``, ``ablate``) does the same way: a
``--threads`` option, clear one-line errors (exit status 2) and a hint on how to continue
after Ctrl-C (exit status 130)."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from .errors import GlyphEBMError


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 is much faster when another job keeps the cores busy)")


def run_long_job(job: Callable[[], int | None], threads: int | None, kept: str) -> int:
    """Set torch's thread count, run ``job`` and turn its ending into an exit status: 0 (or what
    ``job`` returns), 2 with ``error: ...`` for a :class:`GlyphEBMError`, 130 after Ctrl-C with a
    note that ``kept`` (what is already finished) stays and the same command continues."""
    try:
        if threads is not None:
            if threads < 1:
                raise GlyphEBMError(f"--threads must be at least 1, got {threads}")
            import torch

            torch.set_num_threads(threads)
        status = job()
    except GlyphEBMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; run the same command again to continue ({kept} are kept)", file=sys.stderr)
        return 130
    return 0 if status is None else int(status)
