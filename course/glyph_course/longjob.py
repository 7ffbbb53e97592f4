"""What every long, resumable command (``compress``, ``ablate``) does the same way: a
``--threads`` option, clear one-line errors (exit status 2) and a hint on how to continue
after Ctrl-C (exit status 130)."""
from __future__ import annotations

import argparse
from typing import Callable

from glyph_ebm.errors import GlyphEBMError, run_command


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 is much faster when another job keeps the cores busy)")


def run_long_job(job: Callable[[], int | None], threads: int | None, kept: str) -> int:
    """Set torch's thread count, run ``job`` and turn its ending into an exit status
    (:func:`glyph_ebm.errors.run_command`); after Ctrl-C the note says that ``kept`` (what is
    already finished) stays and that the same command continues."""
    def with_threads():
        if threads is not None:
            if threads < 1:
                raise GlyphEBMError(f"--threads must be at least 1, got {threads}")
            import torch

            torch.set_num_threads(threads)
        return job()

    return run_command(with_threads, interrupted=f"run the same command again to continue ({kept} are kept)")
