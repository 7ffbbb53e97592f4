"""``glyph-ebm`` command line: ``train``, ``template``, ``glyphs``, ``grade``, ``release``, ``autograde``,
``compress``.

``glyph-ebm train [--code DIR] ...`` runs the main job of the exercise code in ``DIR``
(default: the reference ``solutions/``; use ``--code ex3`` for your filled-in template); all
other options are those of ``python ex3_main.py --help``.

``glyph-ebm grade PATH [--json]`` grades one folder of exercise files with nbgrader;
``glyph-ebm release`` and ``glyph-ebm autograde SUBMISSIONS`` are the instructor's commands
behind ``make release`` and ``make autograde``.

``glyph-ebm compress RUN --method all [--quick]`` runs the compression study
(:mod:`glyph_ebm.compression.study`) on a trained model and writes ``RUN/compression/``;
``glyph-ebm ablate [--quick]`` trains the advanced-training ablation (:mod:`glyph_ebm.advanced.ablate`).
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
    return run_from_command_line(load_exercise(code), rest, prog="glyph-ebm train")


def _grade(argv) -> int:
    import json

    from .grading.autograde import grade_folder

    p = argparse.ArgumentParser(prog="glyph-ebm grade",
                                description="grade one folder of exercise files (ex3_*.py, with or without "
                                            "ex3.ipynb) with nbgrader, as the course's autograder does")
    p.add_argument("path", type=Path, help="folder with your ex3_*.py files (e.g. ex3)")
    p.add_argument("--json", action="store_true", help="print the scores as JSON on the last line")
    p.add_argument("--timeout", type=int, default=None, help="time limit per test cell in seconds (default 30)")
    p.add_argument("--feedback", type=Path, default=None, help="also save nbgrader's feedback HTML here")
    args = p.parse_args(argv)
    result = grade_folder(args.path, timeout=args.timeout, feedback_to=args.feedback)
    print(result.report())
    if result.feedback is not None:
        print(f"feedback: {result.feedback}")
    if args.json:
        print(json.dumps(result.to_json()))
    return 0


def _release(argv) -> int:
    from .grading.autograde import COURSE, release

    p = argparse.ArgumentParser(prog="glyph-ebm release",
                                description="build the student release of exercise 3 with nbgrader "
                                            "(notebook without hidden tests + generated templates) and check it for leaks")
    p.add_argument("--course", type=Path, default=COURSE, help="nbgrader course folder (default: autograde/)")
    args = p.parse_args(argv)
    target = release(args.course)
    print(f"released exercise 3 to {target} (leak guard: clean)")
    for path in sorted(target.iterdir()):
        print(f"  {path.name}")
    return 0


def _autograde(argv) -> int:
    from .grading.autograde import COURSE, autograde, summary

    p = argparse.ArgumentParser(prog="glyph-ebm autograde",
                                description="autograde SUBMISSIONS/<student>/ with nbgrader; writes grades.csv "
                                            "and feedback/<student>/ex3/ex3.html in the course folder")
    p.add_argument("submissions", type=Path, help="folder with one sub-folder per student")
    p.add_argument("--course", type=Path, default=COURSE, help="nbgrader course folder (default: autograde/)")
    p.add_argument("--timeout", type=int, default=None, help="time limit per test cell in seconds (default 30)")
    args = p.parse_args(argv)
    results = autograde(args.submissions, args.course, timeout=args.timeout)
    print(summary(results))
    for r in results:
        for note in r.notes:
            print(f"note: {r.student}: {note}")
    print(f"grade table: {args.course / 'grades.csv'}")
    print(f"feedback:    {args.course / 'feedback'}/<student>/ex3/ex3.html")
    return 0


def _template(argv) -> int:
    from .grading import notebook as graded_notebook

    p = argparse.ArgumentParser(prog="glyph-ebm template",
                                description="generate ex3/ from solutions/ and the graded notebook "
                                            "autograde/source/ex3/ex3.ipynb from autograde/ex3_source.py "
                                            "(or check that both are current)")
    p.add_argument("--check", action="store_true", help="only report whether the generated files are stale")
    args = p.parse_args(argv)
    if args.check:
        stale = stale_template_files()
        if stale:
            print(f"ex3/ is stale: {', '.join(stale)} differ from the template generated from solutions/; "
                  "run `make template`", file=sys.stderr)
        if graded_notebook.notebook_is_stale():
            print("autograde/source/ex3/ex3.ipynb is stale: it differs from the notebook built from "
                  "autograde/ex3_source.py; run `make template`", file=sys.stderr)
            stale.append("ex3.ipynb")
        if stale:
            return 1
        print("ex3/ and the graded notebook are up to date")
        return 0
    for path in [*generate_template(), graded_notebook.write_notebook()]:
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


def _compress(argv) -> int:
    from .compression.study import METHODS, STRATEGIES, StudyConfig, load_subject, run_study
    from .longjob import add_threads_option, run_long_job

    p = argparse.ArgumentParser(prog="glyph-ebm compress",
                                description="quantize, prune and distill a trained energy model; writes "
                                            "RUN/compression/ (results.csv, results.md, figures)")
    p.add_argument("run", type=Path, help="run folder with checkpoints/last.ckpt (e.g. runs/demo) "
                                          "or a pretrained .pt file")
    p.add_argument("--method", default="all", help=f"{'|'.join(METHODS)}|all, or a comma-separated list (default all)")
    p.add_argument("--quick", action="store_true", help="fewer ratios, strategies and steps (< 20 min on 2 CPU cores)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default RUN/compression)")
    p.add_argument("--code", type=Path, default=None, help="exercise folder whose CNNModel the weights fit "
                                                         "(default: the reference solutions/)")
    p.add_argument("--strategies", default=None, help=f"pruning strategies, comma-separated: {', '.join(STRATEGIES)}")
    p.add_argument("--ratios", default=None, help="pruning ratios, comma-separated (e.g. 0.3,0.5,0.9)")
    p.add_argument("--finetune-steps", type=int, default=None, help="fine-tune steps per pruned model (0 = none)")
    p.add_argument("--distill-steps", type=int, default=None, help="training steps per student")
    p.add_argument("--overwrite", action="store_true", help="discard an earlier study in the output folder")
    add_threads_option(p)
    args = p.parse_args(argv)

    def job() -> None:
        methods = METHODS if args.method == "all" else tuple(m.strip() for m in args.method.split(",") if m.strip())
        changes = {"methods": methods}
        if args.strategies:
            changes["strategies"] = tuple(s.strip() for s in args.strategies.split(","))
        if args.ratios:
            try:
                changes["ratios"] = tuple(float(r) for r in args.ratios.split(","))
            except ValueError:
                raise GlyphEBMError(f"--ratios expects numbers like 0.3,0.5,0.9, got {args.ratios!r}") from None
        if args.finetune_steps is not None:
            changes["finetune_steps"] = args.finetune_steps
        if args.distill_steps is not None:
            changes["distill_steps"] = args.distill_steps
        study = StudyConfig.quick(**changes) if args.quick else StudyConfig(**changes)
        study.validate()
        if not args.run.exists():
            raise GlyphEBMError(f"{args.run} does not exist; train a model first (make demo writes runs/demo)")
        subject = load_subject(args.run, code_dir=args.code)
        out = args.out or (Path("runs") / f"{args.run.stem}-compression" if args.run.is_file()
                           else args.run / "compression")
        run_study(subject, out, study, overwrite=args.overwrite)

    return run_long_job(job, args.threads, kept="finished models")


def _ablate(argv) -> int:
    from .advanced.ablate import main as ablate_main

    return ablate_main(argv)


def _glyphs(argv) -> int:
    from .glyphs import main as glyphs_main

    return glyphs_main(argv) or 0


COMMANDS = {"train": _train, "template": _template, "glyphs": _glyphs, "grade": _grade,
            "release": _release, "autograde": _autograde, "compress": _compress,
            "ablate": _ablate}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: glyph-ebm {train,template,glyphs,grade,release,autograde,compress,ablate} [options]\n"
              "  train      train/evaluate the exercise (options: glyph-ebm train --help)\n"
              "  template   regenerate ex3/ and the graded notebook from their sources\n"
              "  glyphs     write a contact sheet of the embedded glyph set\n"
              "  grade      grade one folder of exercise files with nbgrader (--json for scores)\n"
              "  release    build the student release with nbgrader and check it for leaks\n"
              "  autograde  grade a folder of submissions (one sub-folder per student)\n"
              "  compress   quantize, prune and distill a trained model (RUN/compression/)\n"
              "  ablate     train the advanced-training ablation (runs/ablation/)", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except GlyphEBMError as exc:          # bad input of any command: its message, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
