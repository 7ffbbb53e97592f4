"""The students' ``glyph-ebm`` command: ``train`` and ``glyphs``.

``glyph-ebm train [--code DIR] ...`` runs the main job of the exercise files in ``DIR`` (default:
the current folder, e.g. your ``ex3/``); all other options are those of
``python ex3_main.py --help``. ``glyph-ebm glyphs --out sheet.png`` draws a contact sheet of
the embedded glyph set. The instructors' commands (release, grading, the extension chapters)
are ``glyph-course``, which is not part of the student library.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path



def _train(argv) -> int:
    from .runner import run_from_command_line

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--code", type=Path, default=Path.cwd(),
                     help="folder with your exercise files (default: the current folder)")
    known, rest = pre.parse_known_args(argv)
    return run_from_command_line(known.code, rest, prog="glyph-ebm train")


def _glyphs(argv) -> int:
    from .glyphs import main as glyphs_main

    return glyphs_main(argv) or 0


COMMANDS = {"train": _train, "glyphs": _glyphs}
USAGE = """usage: glyph-ebm {train,glyphs} [options]
  train    train and evaluate the exercise in --code DIR (default: this folder; options: glyph-ebm train --help)
  glyphs   write a contact sheet of the embedded glyph set (--out FILE.png)"""


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
