"""Leak guard: no solution code, no hidden test and no course tooling may reach students.

What counts as a leak:

* every line inside a ``# BEGIN SOLUTION`` block of ``solutions/*.py``, and every line between
  ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` in the source notebook, unless
  students see that line anyway (in the generated templates or the visible part of the
  notebook: shared lines such as ``x, y = batch`` are not leaks). The hints of the templates
  (``raise NotImplementedError("Exercise 3.2a: ...")``) do not make a line public: a hint that
  quotes a solution line is a leak like any other copy of it;
* the markers themselves;
* a hint, or the docstring of the function it stands in, that spells out its block's answer
  (:func:`spelled_answer`): it names every distinctive identifier the answer uses (the
  attributes and functions it calls, not its own local names), or it contains a run of
  :data:`MIN_CODE_RUN` code tokens of the answer. A hint says *what* to compute, not *how*;
* anything of the course tooling: a file or folder named ``glyph_course`` (the package, its
  ``.dist-info``/``.egg-info``) or ``solutions``, a Python file that imports ``glyph_course``,
  or a copy of one of its modules under another name.

Feedback goes back to students together with their own code, which may well contain lines of
the reference; there only hidden tests count as secret, in the HTML that nbgrader generates.

:func:`scan` reads every file of a folder as a student would see it: notebooks as their cell
sources and outputs, HTML as text with the tags removed (syntax highlighting splits code into
many ``<span>`` elements), anything else as plain text; archives (the kit's ``.zip``, the
library's ``.whl``) are unpacked into a temporary folder and scanned file by file, findings
named ``archive!member``.
"""
from __future__ import annotations

import ast
import builtins
import hashlib
import html
import json
import keyword
import re
import tempfile
import textwrap
import zipfile
from pathlib import Path

from ..paths import SOLUTIONS
from ..template import EXERCISE_FILES, _blocks, solution_blocks, strip_solutions
from glyph_ebm.errors import GlyphEBMError
from . import notebook as nbsource

MIN_LENGTH = 12          # shorter lines ("return x", "pass") are too generic to count as leaks
HIDDEN_MARKERS = (nbsource.HIDDEN_BEGIN, nbsource.HIDDEN_END)
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", *HIDDEN_MARKERS)
MIN_CODE_RUN = 5         # a hint sharing this many consecutive code tokens (two of them names) quotes its answer
# lines of solution blocks that are PyTorch idioms any code has (the student library too): not secret
COMMON_IDIOMS = frozenset({"with torch.no_grad():", "nn.Flatten(),"})
COURSE_PACKAGE = "glyph_course"
_TAG = re.compile(r"<[^>]+>")
_BINARY = (".png", ".jpg", ".pdf", ".db", ".pyc", ".ckpt", ".npz", ".pt")
_ARCHIVES = (".zip", ".whl")
_HINT_LINE = re.compile(r'^\s*raise NotImplementedError\("Exercise ')
_HINT_TEXT = re.compile(r"^Exercise (?P<task>\d+\.\d+[a-z]?(?:/[a-z])?): (?P<hint>.*)$", re.S)
_IMPORTS_TOOLING = re.compile(rf"^\s*(?:from\s+{COURSE_PACKAGE}\b|import\s+(?:[\w.]+\s*,\s*)*{COURSE_PACKAGE}\b)",
                              re.M)
# names that say nothing about an answer: the object itself and the usual module aliases
_GENERIC_NAMES = frozenset({"self", "cls", "torch", "nn", "np", "F", "math"}) | frozenset(dir(builtins)) \
    | frozenset(keyword.kwlist)
_CODE_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d*)?|\*\*|//|->|[-+*/%@=<>!]=?|[()\[\]{},.:]")


class LeakError(GlyphEBMError):
    """Secret text was found in a folder meant for students."""


def _meaningful(line: str) -> bool:
    line = line.strip()
    return len(line) >= MIN_LENGTH and not line.startswith("#")


# -- secret lines -----------------------------------------------------------------------------
def public_lines(solutions: Path = SOLUTIONS, notebook_path: Path = nbsource.NOTEBOOK) -> set[str]:
    """Lines students see anyway: the generated templates (less their hints) and the visible
    notebook."""
    lines = set()
    for name in EXERCISE_FILES:
        template = strip_solutions((solutions / name).read_text(), name)
        lines |= {ln.strip() for ln in template.splitlines() if not _HINT_LINE.match(ln)}
    nb = json.loads(Path(notebook_path).read_text())
    for cell in nb["cells"]:
        lines |= {ln.strip() for ln in nbsource.split_hidden(nbsource.cell_source(cell))[0]}
    return lines


def solution_lines(solutions: Path = SOLUTIONS) -> set[str]:
    """Every meaningful line inside the solution blocks of the reference."""
    return {ln.strip() for name in EXERCISE_FILES for block in solution_blocks((solutions / name).read_text())
            for ln in block.splitlines() if _meaningful(ln)}


def hidden_lines(notebook_path: Path = nbsource.NOTEBOOK) -> set[str]:
    """Every meaningful line inside the hidden-test regions of the source notebook."""
    nb = json.loads(Path(notebook_path).read_text())
    return {ln for ln in nbsource.hidden_test_lines(nb) if _meaningful(ln)}


def secret_lines(solutions: Path = SOLUTIONS, notebook_path: Path = nbsource.NOTEBOOK,
                 hidden_only: bool = False) -> set[str]:
    """Solution and hidden-test lines that students do not see anyway (``hidden_only``: only
    hidden-test lines, for feedback, which also holds the student's own code)."""
    public = "\n".join(public_lines(solutions, notebook_path))
    candidates = hidden_lines(notebook_path) if hidden_only else solution_lines(solutions) | hidden_lines(notebook_path)
    return {ln for ln in candidates if ln not in public and ln not in COMMON_IDIOMS}


# -- hints that give the answer away ------------------------------------------------------------
def answer_blocks(solutions: Path = SOLUTIONS) -> dict[str, list[str]]:
    """``{task: [code of each of its solution blocks]}`` of the reference."""
    answers: dict[str, list[str]] = {}
    for name in EXERCISE_FILES:
        text = (solutions / name).read_text()
        lines = text.splitlines()
        for start, end, m in _blocks(text, name):
            answers.setdefault(m.group("task") or "?", []).append("\n".join(lines[start + 1:end]))
    return answers


def answer_identifiers(code: str) -> set[str]:
    """The distinctive identifiers of a solution block: the attributes, functions and outer
    names it uses, less the names it assigns itself, builtins, keywords, ``self``, the usual
    module aliases and names shorter than three characters (``x``, ``y``, ``F``)."""
    body = textwrap.indent(textwrap.dedent(code), " " * 8)
    try:       # inside a loop in a function, so that return/continue/break/yield parse
        tree = ast.parse("def _block():\n    while True:\n" + body)
    except SyntaxError:
        tree = None
    if tree is None:
        used, assigned = set(_CODE_TOKEN.findall(code)), set()
    else:
        used, assigned = set(), {"_block"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.Name):
                (used if isinstance(node.ctx, ast.Load) else assigned).add(node.id)
            elif isinstance(node, ast.keyword) and node.arg:
                used.add(node.arg)
    return {n for n in used - assigned - _GENERIC_NAMES if len(n) >= 3 and n.isidentifier()}


def _names(identifier: str, words: list[str]) -> bool:
    """Whether prose ``words`` name ``identifier`` (also inflected: ``pool`` in "pooling")."""
    ident = identifier.lower()
    return any(w == ident or w.startswith(ident) or (len(w) >= 4 and ident.startswith(w)) for w in words)


def spelled_answer(text: str, code: str) -> str | None:
    """Why the hint or docstring ``text`` spells out the solution block ``code``, or ``None``.

    Two rules: ``text`` names every distinctive identifier of the answer
    (:func:`answer_identifiers`; only for answers with two or more, one name alone says
    what, not how), or it shares a run of :data:`MIN_CODE_RUN` consecutive code tokens with one
    line of the answer, two of them names and one a distinctive identifier of the answer
    (``get_logits(x)`` is four tokens, ``self.head(x)`` six; a shape such as ``(n,)`` has one
    name, and the notation ``f(x, y)`` none that is distinctive)."""
    identifiers = answer_identifiers(code)
    words = re.findall(r"[a-z0-9_]+", text.lower().replace("-", "_"))
    if len(identifiers) >= 2 and all(_names(i, words) for i in identifiers):
        return f"it names every identifier of the answer: {', '.join(sorted(identifiers))}"
    tokens = _CODE_TOKEN.findall(text)
    runs = {tuple(tokens[i:i + MIN_CODE_RUN]) for i in range(len(tokens) - MIN_CODE_RUN + 1)}
    for line in code.splitlines():
        ct = _CODE_TOKEN.findall(line.split("#")[0])
        for i in range(len(ct) - MIN_CODE_RUN + 1):
            run = tuple(ct[i:i + MIN_CODE_RUN])
            if run in runs and sum(t.isidentifier() for t in run) >= 2 and identifiers & set(run):
                return f"it quotes code of the answer: {line.strip()!r}"
    return None


def _exercise_hint(node: ast.AST) -> tuple[str, str] | None:
    """``(task, hint)`` of ``raise NotImplementedError("Exercise <task>: <hint>")``."""
    if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args
            and getattr(node.exc.func, "id", None) == "NotImplementedError"):
        return None
    arg = node.exc.args[0]
    m = _HINT_TEXT.match(arg.value) if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
    return (m.group("task"), m.group("hint")) if m else None


def hint_findings(text: str, answers: dict[str, list[str]]) -> list[str]:
    """What in the Python source ``text`` spells out an answer: the hint of each exercise's
    ``NotImplementedError`` and the docstring of the function it stands in."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        hint = _exercise_hint(node)
        if hint is not None:
            task, what = hint
            reason = next((r for code in answers.get(task, []) if (r := spelled_answer(what, code))), None)
            if reason:
                found.append(f"the hint of {task} spells out its answer ({reason})")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(node):
            tasks = sorted({h[0] for sub in ast.walk(node) if (h := _exercise_hint(sub))})
            for task in tasks:
                reason = next((r for code in answers.get(task, [])
                               if (r := spelled_answer(ast.get_docstring(node), code))), None)
                if reason:
                    found.append(f"the docstring of {node.name}() spells out the answer of {task} ({reason})")
    return found


# -- course tooling ---------------------------------------------------------------------------
def _tooling_digests() -> set[str]:
    """SHA-256 of every non-trivial module of the course tooling (this package)."""
    package = Path(__file__).resolve().parents[1]
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in package.rglob("*.py") if p.stat().st_size >= 200}


def tooling_findings(rel: str, data: bytes, digests: set[str]) -> list[str]:
    """Why the file ``rel`` (contents ``data``) is part of the course tooling, if it is."""
    found = []
    for part in Path(rel).parts:
        if part == COURSE_PACKAGE or part.startswith((f"{COURSE_PACKAGE}-", f"{COURSE_PACKAGE}.")):
            found.append(f"is part of the course tooling ({part})")
            break
        if part == "solutions":
            found.append("lies in a solutions folder")
            break
    if rel.endswith(".py"):
        if _IMPORTS_TOOLING.search(data.decode(errors="replace")):
            found.append(f"imports the course tooling ({COURSE_PACKAGE})")
        if hashlib.sha256(data).hexdigest() in digests:
            found.append("is a copy of a module of the course tooling")
    return found


# -- scanning ---------------------------------------------------------------------------------
def readable_text(path: Path) -> str:
    """The text of ``path`` as a student would read it."""
    raw = path.read_text(errors="replace")
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(raw)
        except ValueError:
            return raw
        parts = []
        for cell in nb.get("cells", []):
            src = cell.get("source", "")
            parts.append(src if isinstance(src, str) else "".join(src))
            for out in cell.get("outputs", []):
                for key in ("text", "evalue"):
                    val = out.get(key, "")
                    parts.append(val if isinstance(val, str) else "".join(val))
                parts.extend(out.get("traceback", []))
                for val in out.get("data", {}).values():
                    if isinstance(val, (str, list)):
                        parts.append(val if isinstance(val, str) else "".join(val))
        return "\n".join(parts)
    if path.suffix in (".html", ".htm"):
        return html.unescape(_TAG.sub("", raw))
    return raw


def scan(folder: Path, secrets: set[str] | None = None, suffixes: tuple[str, ...] | None = None,
         markers: tuple[str, ...] = MARKERS, answers: dict[str, list[str]] | None = None,
         tooling: bool | None = None) -> list[str]:
    """Leaks in ``folder`` (only files with ``suffixes`` when given): one ``"file: what"`` line
    per finding (empty list = clean). ``answers`` (default: the reference's,
    :func:`answer_blocks`) are what hints must not spell out; ``tooling`` (default: when every
    file is scanned, no ``suffixes``) also looks for the course tooling. ``.zip`` and ``.whl``
    files are unpacked and scanned too, their findings named ``archive!member``."""
    if secrets is None:
        secrets = secret_lines()
    if answers is None:
        answers = answer_blocks()
    digests = _tooling_digests() if (suffixes is None if tooling is None else tooling) else None
    return _scan(Path(folder), "", secrets, suffixes, markers, answers, digests)


def _scan(folder: Path, prefix: str, secrets, suffixes, markers, answers, digests) -> list[str]:
    findings = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = f"{prefix}{path.relative_to(folder).as_posix()}"
        data = path.read_bytes()
        if digests is not None:
            findings += [f"{rel}: {what}" for what in tooling_findings(rel, data, digests)]
        if path.suffix in _ARCHIVES and zipfile.is_zipfile(path):
            with tempfile.TemporaryDirectory(prefix="leakguard-") as tmp:
                with zipfile.ZipFile(path) as archive:
                    archive.extractall(tmp)
                findings += _scan(Path(tmp), f"{rel}!", secrets, suffixes, markers, answers, digests)
            continue
        if path.suffix in _BINARY or (suffixes is not None and path.suffix not in suffixes):
            continue
        text = readable_text(path)
        for marker in markers:
            if marker in text:
                findings.append(f"{rel}: contains the marker {marker!r}")
        for line in sorted(secrets):
            if line in text:
                findings.append(f"{rel}: contains secret line {line!r}")
        if path.suffix == ".py":
            findings += [f"{rel}: {what}" for what in hint_findings(text, answers)]
    return findings


def leak_error(findings: list[str], what: str, where: Path | str) -> LeakError:
    """The :class:`LeakError` listing ``findings`` (at most 20 shown) of ``what`` in ``where``."""
    shown = "\n  ".join(findings[:20])
    more = f"\n  ... and {len(findings) - 20} more" if len(findings) > 20 else ""
    return LeakError(f"leak guard: {what} in {where} contains text that must stay with the instructor:\n"
                     f"  {shown}{more}")


def assert_clean(folder: Path, what: str, secrets: set[str] | None = None, **scan_options) -> None:
    """Raise :class:`LeakError` listing the leaks found in ``folder`` (options: :func:`scan`)."""
    findings = scan(folder, secrets, **scan_options)
    if findings:
        raise leak_error(findings, what, folder)
