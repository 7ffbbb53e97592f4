"""``glyph-ebm`` command line: ``train``, ``template``, ``glyphs``.

``glyph-ebm train [--code DIR] ...`` runs the main job of the exercise code in ``DIR``
(default: the reference ``solutions/``; use ``--code ex3`` for your filled-in template); all
other options are those of ``python ex3_main.py --help``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .course import ROOT, SOLUTIONS, generate_template, stale_template_files
from .errors import GlyphEBMError


def load_exercise(code_dir: Path):
    """Import ``ex3_main`` from ``code_dir`` (the flat, script-style imports of the exercise)."""
    code_dir = Path(code_dir).resolve()
    if not (code_dir / "ex3_main.py").exists():
        raise GlyphEBMError(f"no ex3_main.py in {code_dir}; pass --code with the folder of your exercise files")
    sys.path.insert(0, str(code_dir))
    for name in ("ex3_main", "ex3_model", "ex3_data", "ex3_ood"):
        sys.modules.pop(name, None)
    return importlib.import_module("ex3_main")


def _train(argv) -> int:
    from .runner import run_from_command_line

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--code", default=None)
    known, rest = pre.parse_known_args(argv)
    code = Path(known.code) if known.code else (Path.cwd() if (Path.cwd() / "ex3_main.py").exists() else SOLUTIONS)
    try:
        ex3 = load_exercise(code)
    except GlyphEBMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run_from_command_line(ex3, rest, prog="glyph-ebm train")


def _template(argv) -> int:
    p = argparse.ArgumentParser(prog="glyph-ebm template",
                                description="generate ex3/ from solutions/ (or check it is current)")
    p.add_argument("--check", action="store_true", help="only report whether ex3/ is stale")
    args = p.parse_args(argv)
    if args.check:
        stale = stale_template_files()
        if stale:
            print(f"ex3/ is stale: {', '.join(stale)} differ from the template generated from solutions/; "
                  "run `make template`", file=sys.stderr)
            return 1
        print("ex3/ is up to date")
        return 0
    for path in generate_template():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


def _glyphs(argv) -> int:
    from .glyphs import main as glyphs_main

    return glyphs_main(argv) or 0


COMMANDS = {"train": _train, "template": _template, "glyphs": _glyphs}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: glyph-ebm {train,template,glyphs} [options]\n"
              "  train     train/evaluate the exercise (options: glyph-ebm train --help)\n"
              "  template  regenerate the student template ex3/ from solutions/\n"
              "  glyphs    write a contact sheet of the embedded glyph set", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
