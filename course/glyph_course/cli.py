"""``glyph-course``, the instructors' and developers' command (never in the student kit).

``glyph-course template`` regenerates ``ex3/`` and the graded notebook from their sources;
``glyph-course release`` and ``glyph-course autograde SUBMISSIONS`` are behind ``make release``
and ``make autograde``; ``glyph-course grade PATH [--json]`` grades one folder of exercise files
with nbgrader. ``glyph-course compress RUN --method all [--quick]`` runs the compression study
(:mod:`glyph_course.compression.study`); ``glyph-course ablate [--quick]`` trains the
advanced-training ablation (:mod:`glyph_course.advanced.ablate`); ``glyph-course pretrained RUN``
exports the notebooks' pretrained model. Students use ``glyph-ebm train`` (the student library).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from glyph_ebm.errors import GlyphEBMError, run_command

from .paths import ROOT
from .template import generate_template, stale_template_files


def _grade(argv) -> int:
    import json

    from .grading.autograde import grade_folder

    p = argparse.ArgumentParser(prog="glyph-course grade",
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
    from .grading.kit import LIBRARY, kit_paths

    p = argparse.ArgumentParser(prog="glyph-course release",
                                description="build the student release of exercise 3 with nbgrader "
                                            "(notebook without hidden tests + generated templates) and the "
                                            "student kit (release + the student library's wheel, pinned "
                                            "requirements, README; a folder and a zip), all checked for leaks")
    p.add_argument("--course", type=Path, default=COURSE, help="nbgrader course folder (default: autograde/)")
    p.add_argument("--library", type=Path, default=LIBRARY,
                   help="the student library's package folder the wheel is built from (default: glyph_ebm/)")
    args = p.parse_args(argv)
    target = release(args.course, library=args.library)
    folder, archive = kit_paths(args.course / "kit")
    print(f"released exercise 3 to {target} (nbgrader's release, used for grading)")
    print(f"student kit: {folder}  (leak guard: clean, inside the wheel and the zip too)")
    for path in sorted(folder.iterdir()):
        print(f"  {path.name}")
    print(f"zipped:      {archive}  (hand this to students)")
    return 0


def _autograde(argv) -> int:
    import os

    from .grading import batch, sandbox
    from .grading.autograde import COURSE, autograde, summary

    p = argparse.ArgumentParser(prog="glyph-course autograde",
                                description="autograde SUBMISSIONS/<student>/ with nbgrader, several at once, each in its "
                                            "own folder and contained kernel; writes grades.csv, the gradebook and "
                                            "feedback/<student>/ex3/ex3.html in the course folder. A rerun grades only "
                                            "new or changed submissions.")
    p.add_argument("submissions", type=Path, help="folder with one sub-folder per student")
    p.add_argument("--course", type=Path, default=COURSE, help="nbgrader course folder (default: autograde/)")
    p.add_argument("--timeout", type=int, default=None, help="time limit per test cell in seconds (default 30)")
    p.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
                   help="submissions graded at once (default: the CPUs available)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="a dask.distributed scheduler (tcp://host:8786) whose workers grade the batch instead "
                        "(optional extra glyph-course[dask])")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run the student kernels without the grading sandbox (for debugging)")
    args = p.parse_args(argv)
    executor = batch.scheduler_executor(args.scheduler) if args.scheduler else None
    print(f"grading sandbox: {'off' if args.no_sandbox else sandbox.level()} (see glyph_course/grading/sandbox.py)")
    try:
        results = autograde(args.submissions, args.course, timeout=args.timeout, jobs=args.jobs, executor=executor,
                            contained=False if args.no_sandbox else None, progress_bar=True)
    finally:
        if executor is not None:
            executor.shutdown()
    print(summary(results))
    for r in results:
        for note in r.notes:
            print(f"note: {r.student}: {note}")
    print(f"grade table: {args.course / 'grades.csv'}")
    print(f"feedback:    {args.course / 'feedback'}/<student>/ex3/ex3.html")
    return 0


def _template(argv) -> int:
    from .grading import notebook as graded_notebook

    p = argparse.ArgumentParser(prog="glyph-course template",
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
    from .compression.study import METHODS, STRATEGIES, StudyConfig, run_study
    from .subject import load_subject
    from .longjob import add_threads_option, run_long_job

    p = argparse.ArgumentParser(prog="glyph-course compress",
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


def _export(argv) -> int:
    from .grading.exports import main as export_main

    return export_main(argv)


def _similarity(argv) -> int:
    from .grading.similarity import main as similarity_main

    return similarity_main(argv)


def _ood(argv) -> int:
    from .ood_study import main as ood_main

    return ood_main(argv)


def _judge(argv) -> int:
    from .metrics import write_judge

    p = argparse.ArgumentParser(prog="glyph-course judge",
                                description="train the judge of generated glyphs on the embedded set and write "
                                            "glyph_ebm/judge.pt, which ships with the student library")
    p.add_argument("--out", type=Path, default=None, help="where to write it (default glyph_ebm/judge.pt)")
    args = p.parse_args(argv)
    path = write_judge(args.out)
    from glyph_ebm.judge import read_weights

    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB), test accuracy {read_weights(path)['test_accuracy']:.3f}")
    return 0


def _pretrained(argv) -> int:
    from .pretrained import main as pretrained_main

    return pretrained_main(argv)


COMMANDS = {"template": _template, "release": _release, "grade": _grade, "autograde": _autograde,
            "export": _export, "similarity": _similarity, "compress": _compress, "ablate": _ablate,
            "pretrained": _pretrained, "judge": _judge, "ood": _ood}
USAGE = """usage: glyph-course {template,release,grade,autograde,export,similarity,ood,compress,ablate,pretrained,judge} [options]
  template    regenerate ex3/ and the graded notebook from their sources (--check: only compare)
  release     build the student kit (release folder, zip, wheel) and check it for leaks
  grade       grade one folder of exercise files with nbgrader (--json for scores)
  autograde   grade a folder of submissions (one sub-folder per student), --jobs N at once
  export      grades for Canvas, Moodle, Gradescope (results.json, autograder bundle) or nbgrader's export
  similarity  pairwise similarity of the students' code, an HTML report of the flagged pairs
  ood         compare OOD scores of a trained model on every OOD set (RUN/ood/)
  compress    quantize, prune and distill a trained model (RUN/compression/)
  ablate      train the advanced-training ablation (runs/ablation/)
  pretrained  export the notebooks' pretrained model from a run folder
  judge       train the judge of generated glyphs (glyph_ebm/judge.pt, shipped with the student library)"""


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return run_command(lambda: COMMANDS[argv[0]](argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
