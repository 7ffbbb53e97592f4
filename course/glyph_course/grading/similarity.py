"""Similarity report: which students handed in the same code, made to look different or not.

    python -m glyph_course.grading.similarity SUBMISSIONS [--out DIR] [--threshold X]

What is compared is each student's *own code*: their ``.py`` files (found where the autograder
finds them, :func:`code_folder`) minus the code of the template. The files are
cut into statements (logical lines, whatever their line breaks); a statement that also occurs
in the template (the same tokens; comments, spacing, line breaks, round brackets and trailing
commas aside) is template code and is left out, wherever the student moved it. What remains is what students wrote in place of the
template's ``raise NotImplementedError("Exercise ...")`` lines and anything else they added.
Code given by the template therefore never counts as similarity: two unmodified (or
reformatted) templates share nothing.

The own code is normalised so that the usual disguises do not hide copying: comments, blank
lines, indentation and line breaks are dropped, trailing commas and semicolons too; every
string literal becomes ``S``; every name becomes ``V`` except keywords, attribute names (after
a dot), keyword-argument names, names bound by imports (replaced by the module or object they
stand for, so an ``import ... as`` alias does not matter), names the template defines and
builtins that are called (``len(``, ``range(``). Renaming variables or reformatting leaves the
normalised token stream unchanged.

Every run of :data:`K` consecutive tokens (a k-gram) is hashed, and winnowing (Schleimer,
Wilkerson and Aiken 2003, the method of MOSS) keeps the smallest hash of every window of
:data:`WINDOW` consecutive k-grams: a student's fingerprints are the set of kept hashes.
Any common run of at least ``K + WINDOW - 1`` normalised tokens yields a common fingerprint.
K-grams and windows stay inside one *region* (a run of own statements with no template
statement between them, e.g. what replaced one ``raise``), and a set does not depend on
order, so reordering functions or moving code around does not hide copying either.

The similarity of two students is the share of the smaller set of fingerprints found in the
other: 1.0 when all of one student's own code appears in the other's (also when the copier
added code of their own), near 0 for independent work. A pair is flagged when it reaches the
threshold (:data:`THRESHOLD`) and shares at least :data:`MIN_SHARED` fingerprints (so that a
student with a few lines of own code is not flagged for them). All pairs are compared at once,
as one product of the student-by-fingerprint incidence matrix: a few hundred students take
seconds (``benchmarks/similarity.py``).

Output (in ``--out``, written atomically): ``similarity.html``, a self-contained report (no
scripts, no network) of the flagged pairs with both students' own code side by side and the
matching lines highlighted, the same colour and number on both sides; ``similarity.csv``, the
scores of all pairs.

Why not ``copydetect`` (MIT, a pure-Python wheel that installs here, winnowing like ours): its
report loads Bootstrap from a CDN, its boilerplate filter drops fingerprints of a boilerplate
file rather than the template's lines, it maps every name, API names included, to one symbol
(``torch.logsumexp(x)`` and ``x.max(y)`` look alike, which makes short independent answers of
a constrained exercise collide) and it compares file by file in a loop of Python calls. We
would have had to rewrite extraction, normalisation and report around it; what is left, the
winnowing, is a dozen lines of numpy.

A flag is a reason to look at two submissions, not a verdict: see the "Similarity report"
section of ``docs/grading.md``.
"""
from __future__ import annotations

import argparse
import ast
import builtins
import csv
import functools
import hashlib
import html
import io
import keyword
import re
import sys
import time
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from glyph_ebm.errors import GlyphEBMError, run_command
from glyph_ebm.files import write_text

from ..paths import SOLUTIONS, require
from ..template import EXERCISE_FILES, strip_solutions

K = 12                 # tokens per k-gram: shorter common runs are noise (one idiom, one call)
WINDOW = 8             # winnowing window: every common run of K + WINDOW - 1 = 19 tokens is found
THRESHOLD = 0.5        # flag pairs whose similarity reaches this
MIN_SHARED = 25        # ... and that share at least this many (a full solution has about 220; one
                       # short task about 10: the natural answer to it alone is no reason to look)
MAX_FILE_BYTES = 512 * 1024   # a larger file is cut here (with a note)
MAX_SHOWN = 200        # flagged pairs shown in detail in the HTML (all of them are in the CSV)
REFERENCE = "(reference)"

_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENCODING, tokenize.ENDMARKER}
_CLOSING = {")", "]", "}"}
_KEYWORDS = frozenset(keyword.kwlist)
_BUILTINS = frozenset(dir(builtins))
# fallback tokeniser for files Python cannot tokenise (a syntax error, a broken indentation)
_FALLBACK = re.compile(r"""(?P<string>[rRbBuUfF]{0,2}(?P<q>'''|\"\"\"|'|").*?(?<!\\)(?P=q))"""
                       r"""|(?P<comment>\#.*)|(?P<number>\d[\w.]*)|(?P<name>[^\W\d]\w*)"""
                       r"""|(?P<op>\*\*=?|//=?|>>=?|<<=?|->|:=|[-+*/%@&|^=<>!]=|\S)""")
_FALLBACK_TYPES = {"string": tokenize.STRING, "number": tokenize.NUMBER, "name": tokenize.NAME,
                   "op": tokenize.OP}


class SimilarityError(GlyphEBMError):
    """The submissions folder or an option cannot be used."""


# -- statements and their tokens ----------------------------------------------------------------
@dataclass
class _Statement:
    """One logical line: its tokens ``(type, text, row)`` and its physical rows (1-based)."""

    tokens: list
    first: int
    last: int


def _statements(text: str) -> tuple[list[_Statement], int | None]:
    """The logical lines of a Python file, and ``None``; for a file that Python cannot
    tokenise, one statement per physical line (:func:`_lines`) and the row of the error."""
    out, current = [], []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NEWLINE or tok.type == tokenize.ENDMARKER:
                if current:
                    out.append(_Statement(current, current[0][2], max(current[-1][2], tok.start[0])))
                current = []
            elif tok.type not in _SKIP and tok.string.strip():
                current.append((tok.type, tok.string, tok.start[0]))
        return out, None
    except tokenize.TokenError as exc:
        row = exc.args[1][0] if len(exc.args) > 1 else 0
    except SyntaxError as exc:                   # IndentationError is a SyntaxError
        row = exc.lineno or 0
    return _lines(text), row


def _lines(text: str) -> list[_Statement]:
    """One statement per physical line, with a simpler tokeniser (for broken files)."""
    out = []
    for row, line in enumerate(text.splitlines(), start=1):
        toks = [(_FALLBACK_TYPES[m.lastgroup if m.lastgroup != "q" else "string"], m.group(), row)
                for m in _FALLBACK.finditer(line) if m.lastgroup != "comment"]
        if toks:
            out.append(_Statement(toks, row, row))
    return out


@functools.lru_cache(maxsize=1 << 16)
def _literal(text: str) -> str:
    """A number or string literal by its value (``1`` = ``1.`` = ``1.0``, ``'a'`` = ``"a"``;
    an f-string by its syntax tree)."""
    try:
        value = ast.literal_eval(text)
        if isinstance(value, int) and abs(value) < 2 ** 53:
            value = float(value)
        return repr(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        pass
    try:
        return ast.dump(ast.parse(text.strip(), mode="eval").body)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return text


def _significant(tokens: list) -> list:
    """The tokens without semicolons and trailing commas (reformatting adds or removes them)."""
    out = []
    for i, tok in enumerate(tokens):
        if tok[1] == ";":
            continue
        if tok[1] == "," and i + 1 < len(tokens) and tokens[i + 1][1] in _CLOSING:
            continue
        out.append(tok)
    return out


def _key(statement: _Statement) -> str:
    """What makes a statement the same as a template statement: its tokens, literals by value;
    comments, spacing, line breaks, trailing commas and round brackets (which reformatting adds
    around tuples and long expressions) do not count."""
    return "\x1f".join(_literal(t) if kind in (tokenize.STRING, tokenize.NUMBER) else t
                       for kind, t, _ in _significant(statement.tokens) if t not in ("(", ")"))


def _imports(statements: list[_Statement]) -> dict[str, str]:
    """Names bound by the import statements: ``{name: what it stands for}``
    (``import torch.nn.functional as F`` -> ``{"F": "torch.nn.functional"}``)."""
    bound = {}
    for st in statements:
        if st.tokens[0][1] not in ("import", "from"):
            continue
        try:
            tree = ast.parse(" ".join(t for _, t, _ in st.tokens))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        bound[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        bound[top] = top
            elif isinstance(node, ast.ImportFrom):
                base = "." * node.level + (node.module or "")
                for alias in node.names:
                    if alias.name != "*":
                        bound[alias.asname or alias.name] = f"{base}.{alias.name}"
    return bound


def _normalise(statement: _Statement, api: dict[str, str]) -> list[tuple[str, int]]:
    """The normalised tokens of one statement with their rows (see the module docstring)."""
    tokens = _significant(statement.tokens)
    out, brackets = [], []
    definition = tokens[0][1] in ("def", "async", "class")   # parameter names are the student's
    for i, (kind, text, row) in enumerate(tokens):
        before = tokens[i - 1][1] if i else ""
        after = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == tokenize.NAME:
            if text in _KEYWORDS or before == ".":
                norm = text
            elif after == "=" and brackets and brackets[-1] == "(" and not definition:
                norm = text                       # a keyword argument: the callee's name for it
            elif text in api:
                norm = api[text]
            elif text in _BUILTINS and after == "(":
                norm = text
            else:
                norm = "V"
        elif kind == tokenize.STRING:
            norm = "S"
        elif kind == tokenize.NUMBER:
            norm = _literal(text)
        else:
            norm = text
            if text in ("(", "[", "{"):
                brackets.append(text)
            elif text in _CLOSING and brackets:
                brackets.pop()
        out.append((norm, row))
    return out


# -- the template -----------------------------------------------------------------------------
@dataclass
class Template:
    """What every student was given: its statements (``keys``) and the names it makes API."""

    keys: set[str]
    api: dict[str, str]
    texts: dict[str, str] = field(default_factory=dict)
    line_keys: set[str] = field(default_factory=set)     # its lines, for files that do not tokenise

    @classmethod
    def from_texts(cls, texts: dict[str, str]) -> "Template":
        keys, api, line_keys = set(), {}, set()
        for text in texts.values():
            statements, _ = _statements(text)
            keys.update(_key(st) for st in statements)
            line_keys.update(_key(st) for st in _lines(text))
            api.update(_imports(statements))
            try:
                tree = ast.parse(text)
            except (SyntaxError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    api.setdefault(node.name, node.name)
        keys.discard("")
        line_keys.discard("")
        return cls(keys, api, dict(texts), line_keys)


def load_template(folder: Path | None = None) -> Template:
    """The template from ``folder`` (its ``ex3_*.py``), by default the one generated from
    ``solutions/`` exactly as the release does."""
    if folder is None:
        require(SOLUTIONS, "the reference solution (solutions/)")
        return Template.from_texts({name: strip_solutions((SOLUTIONS / name).read_text(), name)
                                    for name in EXERCISE_FILES})
    folder = Path(folder)
    if not folder.is_dir():
        raise SimilarityError(f"template folder {folder} does not exist")
    texts = {p.name: p.read_text(encoding="utf-8", errors="replace") for p in sorted(folder.glob("*.py"))}
    if not texts:
        raise SimilarityError(f"template folder {folder} has no .py files")
    return Template.from_texts(texts)


# -- one submission -----------------------------------------------------------------------------
@dataclass
class Submission:
    """A student's own code, normalised and fingerprinted.

    ``lines``: ``(file, row, text)`` of every physical line with own code, in file order;
    ``tokens``: the normalised token stream; ``token_line[i]``: index in ``lines`` of token i;
    ``token_region[i]``: the region of token i (a region is a run of own statements with no
    template statement between them: what replaced one ``raise NotImplementedError``, a
    helper added between two template functions); ``kgrams``: the hash of every k-gram that
    lies within one region, ``kgram_start``: the position of its first token;
    ``fingerprints``: the winnowed hashes (sorted, unique).
    """

    student: str
    lines: list[tuple[str, int, str]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    token_line: list[int] = field(default_factory=list)
    token_region: list[int] = field(default_factory=list)
    kgrams: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    kgram_start: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fingerprints: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    notes: list[str] = field(default_factory=list)


def _file_order(path: Path):
    return (EXERCISE_FILES.index(path.name) if path.name in EXERCISE_FILES else len(EXERCISE_FILES), path.name)


def code_folder(student_dir: Path) -> Path | None:
    """Where a student's exercise files are, by the autograder's rule
    (:func:`.gradescope_runner.code_folder`)."""
    from .gradescope_runner import code_folder as find

    return find(Path(student_dir), list(EXERCISE_FILES))


def read_files(student_dir: Path) -> tuple[dict[str, str], list[str]]:
    """The student's ``.py`` files ``{name: text}`` (all of their code folder, helpers too) and
    notes on what was odd."""
    folder = code_folder(Path(student_dir))
    if folder is None:
        return {}, ["no ex3_*.py files were found in the submission"]
    texts, notes = {}, []
    for path in sorted(folder.glob("*.py"), key=_file_order):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if len(data) > MAX_FILE_BYTES:
            notes.append(f"{path.name} is {len(data) // 1024} KiB: only its first {MAX_FILE_BYTES // 1024} KiB were compared")
            data = data[:MAX_FILE_BYTES]
        texts[path.name] = data.decode("utf-8", errors="replace")
    return texts, notes


def own_code(texts: dict[str, str], template: Template, student: str = "") -> Submission:
    """The statements of ``texts`` that are not template statements, normalised."""
    sub = Submission(student)
    rows: dict[tuple[str, int], int] = {}
    region, in_region = -1, False
    for name, text in texts.items():
        if text == template.texts.get(name):          # the file as handed out: nothing of their own
            continue
        statements, broken = _statements(text)
        keys = template.keys
        if broken is not None:    # compared line by line, with the template's lines
            keys = template.keys | template.line_keys
            sub.notes.append(f"{name} cannot be tokenised (line {broken}): compared line by line")
        api = {**template.api, **_imports(statements)}
        physical = text.splitlines()
        in_region = False
        for st in statements:
            if _key(st) in keys:
                in_region = False
                continue
            if not in_region:
                region, in_region = region + 1, True
            for row in range(st.first, st.last + 1):
                if (name, row) not in rows:
                    rows[(name, row)] = len(sub.lines)
                    sub.lines.append((name, row, physical[row - 1] if row <= len(physical) else ""))
            for norm, row in _normalise(st, api):
                sub.tokens.append(norm)
                sub.token_line.append(rows[(name, row)])
                sub.token_region.append(region)
    return sub


_TOKEN_HASHES: dict[str, int] = {}
_MULT = np.uint64(0x100000001B3)


def _token_hash(token: str) -> int:
    h = _TOKEN_HASHES.get(token)
    if h is None:
        h = _TOKEN_HASHES[token] = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
    return h


def kgram_hashes(tokens: list[str], k: int = K) -> np.ndarray:
    """A 64-bit hash of every run of ``k`` consecutive tokens (the same in every run)."""
    ids = np.array([_token_hash(t) for t in tokens], dtype=np.uint64)
    n = len(ids) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.zeros(n, dtype=np.uint64)
    for j in range(k):                         # polynomial hash, wrapping at 2^64
        h = h * _MULT + ids[j:j + n]
    h ^= h >> np.uint64(33)                    # mix, so that the minimum of a window is fair
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    return h


def winnow(hashes: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """The fingerprints of a document: the smallest hash of every window of ``window``
    consecutive k-gram hashes (the rightmost on ties), as a sorted set."""
    if len(hashes) == 0:
        return hashes
    if len(hashes) <= window:
        return np.unique(hashes.min(keepdims=True))
    windows = np.lib.stride_tricks.sliding_window_view(hashes, window)
    picks = np.arange(len(windows)) + (window - 1 - np.argmin(windows[:, ::-1], axis=1))
    return np.unique(hashes[picks])


def fingerprint(sub: Submission, k: int = K, window: int = WINDOW) -> Submission:
    """Hash the k-grams of ``sub`` that lie within one region and winnow each region on its
    own: what a region yields does not depend on its neighbours, so moving code around (or
    reordering functions) changes no fingerprint."""
    hashes = kgram_hashes(sub.tokens, k)
    region = np.asarray(sub.token_region, dtype=np.int64)
    starts = np.arange(len(hashes))
    inside = region[starts] == region[starts + k - 1] if len(hashes) else np.zeros(0, dtype=bool)
    sub.kgrams, sub.kgram_start = hashes[inside], starts[inside]
    first = region[sub.kgram_start]
    cuts = np.flatnonzero(np.diff(first)) + 1
    parts = [winnow(h, window) for h in np.split(sub.kgrams, cuts)] if len(first) else []
    sub.fingerprints = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)
    return sub


def load_submission(student_dir: Path, template: Template, k: int = K, window: int = WINDOW,
                    student: str | None = None) -> Submission:
    """One student's own code, normalised and fingerprinted."""
    student_dir = Path(student_dir)
    texts, notes = read_files(student_dir)
    sub = own_code(texts, template, student or student_dir.name)
    sub.notes += notes
    if texts and not sub.tokens:
        sub.notes.append("no code of its own: the template unchanged")
    return fingerprint(sub, k, window)


# -- all pairs ----------------------------------------------------------------------------------
@dataclass
class Comparison:
    """Scores of all pairs: ``shared[i, j]`` fingerprints in common, ``sizes[i]`` fingerprints
    of student i, ``similarity[i, j] = shared / min(sizes[i], sizes[j])``."""

    shared: np.ndarray
    sizes: np.ndarray
    similarity: np.ndarray


def compare(subs: list[Submission], chunk: int = 4096) -> Comparison:
    """Fingerprints in common for every pair, as ``M @ M.T`` of the student-by-fingerprint
    incidence matrix ``M`` (only fingerprints held by two students or more; columns in chunks)."""
    n = len(subs)
    sizes = np.array([len(s.fingerprints) for s in subs], dtype=np.int64)
    shared = np.zeros((n, n), dtype=np.int64)
    if n and sizes.sum():
        all_h = np.concatenate([s.fingerprints for s in subs])
        owner = np.repeat(np.arange(n), sizes)
        values, counts = np.unique(all_h, return_counts=True)   # each student's set is unique
        common = values[counts >= 2]
        keep = np.isin(all_h, common)
        col, row = np.searchsorted(common, all_h[keep]), owner[keep]
        acc = np.zeros((n, n), dtype=np.float64)
        for start in range(0, len(common), chunk):
            sel = (col >= start) & (col < start + chunk)
            m = np.zeros((n, min(chunk, len(common) - start)), dtype=np.float32)
            m[row[sel], col[sel] - start] = 1.0
            acc += m @ m.T
        shared = np.rint(acc).astype(np.int64)
    np.fill_diagonal(shared, sizes)
    smaller = np.minimum(sizes[:, None], sizes[None, :])
    similarity = np.divide(shared, smaller, out=np.zeros((n, n)), where=smaller > 0)
    return Comparison(shared, sizes, similarity)


@dataclass(slots=True)
class Pair:
    a: int
    b: int
    similarity: float
    shared: int
    flagged: bool


def pairs(comparison: Comparison, threshold: float = THRESHOLD, min_shared: int = MIN_SHARED) -> list[Pair]:
    """Every pair ``a < b``, most similar first."""
    n = len(comparison.sizes)
    ia, ib = np.triu_indices(n, k=1)
    sim, shared = comparison.similarity[ia, ib], comparison.shared[ia, ib]
    order = np.lexsort((ib, ia, -sim))
    return [Pair(int(ia[o]), int(ib[o]), float(sim[o]), int(shared[o]),
                 bool(sim[o] >= threshold and shared[o] >= min_shared)) for o in order]


# -- matching regions of one pair -------------------------------------------------------------------
def fragments(a: Submission, b: Submission, k: int = K) -> list[tuple[int, int, int, int]]:
    """Runs of k-grams that ``a`` and ``b`` have in common: ``(a_first, a_last, b_first,
    b_last)`` token positions (the last k-gram's last token included), in ``a``'s order."""
    where: dict[int, set[int]] = {}
    for h, j in zip(b.kgrams.tolist(), b.kgram_start.tolist()):
        where.setdefault(h, set()).add(j)
    out, cur = [], None                  # cur = [a_start, a_end, b_start, b_end] k-gram starts
    for h, i in zip(a.kgrams.tolist(), a.kgram_start.tolist()):
        js = where.get(h)
        if not js:
            cur = None
            continue
        if cur is not None and cur[1] == i - 1 and cur[3] + 1 in js:
            cur[1], cur[3] = i, cur[3] + 1
            continue
        cur = [i, i, min(js), min(js)]
        out.append(cur)
    return [(s, e + k - 1, bs, be + k - 1) for s, e, bs, be in out]


def line_labels(sub: Submission, spans: list[tuple[int, int]]) -> dict[int, int]:
    """``{line index: fragment number}`` (1-based, the first fragment of a line wins)."""
    labels: dict[int, int] = {}
    for number, (first, last) in enumerate(spans, start=1):
        for t in range(first, min(last, len(sub.token_line) - 1) + 1):
            labels.setdefault(sub.token_line[t], number)
    return labels


# -- the report ----------------------------------------------------------------------------------
@dataclass
class Report:
    """What :func:`similarity_report` found and wrote."""

    submissions: list[Submission]
    comparison: Comparison
    pairs: list[Pair]
    threshold: float
    html: Path | None = None
    csv: Path | None = None

    @property
    def flagged(self) -> list[Pair]:
        return [p for p in self.pairs if p.flagged]

    def names(self, pair: Pair) -> tuple[str, str]:
        return self.submissions[pair.a].student, self.submissions[pair.b].student


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table.sum{border-collapse:collapse;margin:.5em 0}table.sum td,table.sum th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
.pair{border-top:2px solid #888;margin-top:1.5em;padding-top:.5em}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:1em}
.side{overflow-x:auto;border:1px solid #ddd}
.code{border-collapse:collapse;font-family:ui-monospace,monospace;font-size:12px;width:100%}
.code td{padding:0 .4em;white-space:pre;vertical-align:top}
.code td.ln,.code td.tag{color:#888;text-align:right;user-select:none}
.code tr.file td{background:#eee;font-weight:bold;color:#222}
.code tr.gap td{color:#aaa}
.hit td.src{font-weight:600}
.m0{background:#ffe08a}.m1{background:#b7e4ff}.m2{background:#c9f2c0}.m3{background:#ffc9de}.m4{background:#e0d0ff}.m5{background:#ffd3b0}
.note{color:#a40}
"""


def _side(sub: Submission, labels: dict[int, int]) -> str:
    rows, last = [], None
    for index, (name, row, text) in enumerate(sub.lines):
        if last is None or last[0] != name:
            rows.append(f'<tr class="file"><td colspan="3">{html.escape(name)}</td></tr>')
        elif row > last[1] + 1:
            rows.append('<tr class="gap"><td class="ln">&#8942;</td><td class="tag"></td><td></td></tr>')
        last = (name, row)
        number = labels.get(index)
        if number is None:
            rows.append(f'<tr><td class="ln">{row}</td><td class="tag"></td><td class="src">{html.escape(text)}</td></tr>')
        else:
            rows.append(f'<tr class="hit m{(number - 1) % 6}" data-match="{number}"><td class="ln">{row}</td>'
                        f'<td class="tag">#{number}</td><td class="src">{html.escape(text)}</td></tr>')
    if not rows:
        rows.append('<tr><td class="src">(no code of its own)</td></tr>')
    return f'<table class="code">{"".join(rows)}</table>'


def pair_html(report: Report, pair: Pair, anchor: str, k: int = K) -> str:
    """One flagged pair: scores, then both students' own code with the matching lines marked."""
    a, b = report.submissions[pair.a], report.submissions[pair.b]
    frags = fragments(a, b, k)
    left = line_labels(a, [(f[0], f[1]) for f in frags])
    right = line_labels(b, [(f[2], f[3]) for f in frags])
    ea, eb = html.escape(a.student), html.escape(b.student)
    return (f'<div class="pair" id="{anchor}"><h2>{ea} &harr; {eb}: {pair.similarity:.0%}</h2>'
            f'<p>{pair.shared} fingerprints in common ({len(a.fingerprints)} / {len(b.fingerprints)}); '
            f'{len(frags)} matching regions; matching lines: {len(left)} of {len(a.lines)} ({ea}), '
            f'{len(right)} of {len(b.lines)} ({eb}). Each region has the same number and colour on both sides.</p>'
            f'<div class="sides"><div class="side"><h3>{ea}</h3>{_side(a, left)}</div>'
            f'<div class="side"><h3>{eb}</h3>{_side(b, right)}</div></div></div>')


def render_html(report: Report, k: int = K, window: int = WINDOW, min_shared: int = MIN_SHARED) -> str:
    subs, flagged = report.submissions, report.flagged
    shown = flagged[:MAX_SHOWN]
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           '<title>Similarity report</title>', f"<style>{_CSS}</style></head><body>",
           "<h1>Similarity report</h1>",
           f"<p>{len(subs)} submissions, {len(report.pairs)} pairs compared, <b>{len(flagged)} flagged</b> "
           f"(similarity &ge; {report.threshold:.0%} and at least {min_shared} fingerprints in common). "
           f"Compared: each student's own code (their files minus the template's statements), normalised "
           f"(names &rarr; V, strings &rarr; S, comments and formatting dropped; attributes, keyword "
           f"arguments, imports and called builtins kept); fingerprints: winnowed {k}-token k-grams, "
           f"window {window}. Similarity = share of the smaller student's fingerprints found in the other's. "
           f"A flag is a reason to look at the two submissions, not a verdict. All scores: similarity.csv.</p>"]
    if flagged:
        out.append('<table class="sum"><tr><th>#</th><th>student</th><th>student</th><th>similarity</th>'
                   '<th>fingerprints in common</th></tr>')
        for i, p in enumerate(flagged, start=1):
            na, nb = (html.escape(s) for s in report.names(p))
            link = f'<a href="#pair{i}">{i}</a>' if i <= MAX_SHOWN else str(i)
            out.append(f"<tr><td>{link}</td><td>{na}</td><td>{nb}</td><td>{p.similarity:.0%}</td><td>{p.shared}</td></tr>")
        out.append("</table>")
        if len(flagged) > len(shown):
            out.append(f'<p class="note">Only the first {MAX_SHOWN} flagged pairs are shown below.</p>')
    else:
        out.append("<p>No pair reaches the threshold.</p>")
    notes = [(s.student, n) for s in subs for n in s.notes]
    if notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f'<li class="note">{html.escape(s)}: {html.escape(n)}</li>'
                                                  for s, n in notes) + "</ul>")
    out += [pair_html(report, p, f"pair{i}", k) for i, p in enumerate(shown, start=1)]
    out.append("</body></html>\n")
    return "\n".join(out)


def render_csv(report: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["student_a", "student_b", "similarity", "shared_fingerprints", "fingerprints_a",
                "fingerprints_b", "flagged"])
    sizes = report.comparison.sizes
    for p in report.pairs:
        a, b = report.names(p)
        w.writerow([a, b, f"{p.similarity:.4f}", p.shared, int(sizes[p.a]), int(sizes[p.b]), int(p.flagged)])
    return buf.getvalue()


def student_folders(submissions: Path, out: Path | None = None) -> list[Path]:
    """The student folders of ``submissions`` (as the autograder takes them; not ``out``)."""
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise SimilarityError(f"submissions folder {submissions} does not exist (give the folder with "
                              "one sub-folder per student)")
    folders = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    if out is not None:
        folders = [p for p in folders if p.resolve() != Path(out).resolve()]
    if len(folders) < 2:
        raise SimilarityError(f"{submissions} has {len(folders)} student folder(s); comparing needs at least two "
                              "(one sub-folder per student)")
    return folders


def similarity_report(submissions: Path, out: Path | None = None, threshold: float = THRESHOLD,
                      template: Path | None = None, reference: bool = False, k: int = K,
                      window: int = WINDOW, min_shared: int = MIN_SHARED) -> Report:
    """Compare every pair of students in ``submissions`` and, when ``out`` is given, write
    ``similarity.html`` and ``similarity.csv`` there. ``reference``: the reference solution
    takes part as one more student, ``(reference)`` (a leaked solution shows up as a pair)."""
    if not 0.0 < threshold <= 1.0:
        raise SimilarityError(f"--threshold must be in (0, 1], got {threshold:g}")
    if k < 2 or window < 1 or min_shared < 1:
        raise SimilarityError(f"--k must be at least 2, --window and --min-shared at least 1 (got {k}, {window}, {min_shared})")
    folders = student_folders(submissions, out)
    tmpl = load_template(template)
    subs = [load_submission(folder, tmpl, k, window) for folder in folders]
    if reference:
        subs.append(load_submission(require(SOLUTIONS, "the reference solution (solutions/)"), tmpl, k, window,
                                    student=REFERENCE))
    comparison = compare(subs)
    report = Report(subs, comparison, pairs(comparison, threshold, min_shared), threshold)
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise SimilarityError(f"--out {out} is a file, not a folder")
        report.html = write_text(out / "similarity.html", render_html(report, k, window, min_shared))
        report.csv = write_text(out / "similarity.csv", render_csv(report))
    return report


# -- command line -------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):            # one line, exit 2, through run_command
        raise SimilarityError(f"{message} (see --help)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m glyph_course.grading.similarity",
                description="Pairwise similarity of the students' own code (their ex3_*.py files minus the "
                            "template), robust to renamed variables, reformatting, changed comments and "
                            "reordered functions. Writes similarity.html (the flagged pairs, matching lines "
                            "side by side) and similarity.csv (all pairs). A flag is a reason to look, not a verdict.")
    p.add_argument("submissions", type=Path, metavar="SUBMISSIONS", help="folder with one sub-folder per student (SUBMISSIONS/<student>/ex3/ex3_*.py "
                                                  "or the files directly in SUBMISSIONS/<student>/)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="output folder (default: SUBMISSIONS-similarity next to SUBMISSIONS)")
    p.add_argument("--threshold", type=float, default=THRESHOLD, metavar="X",
                   help=f"flag pairs whose similarity (share of the smaller submission's fingerprints found in the "
                        f"other) is at least this, in (0, 1] (default {THRESHOLD})")
    p.add_argument("--min-shared", type=int, default=MIN_SHARED, metavar="N",
                   help=f"... and that share at least this many fingerprints (default {MIN_SHARED})")
    p.add_argument("--template", type=Path, default=None, metavar="DIR",
                   help="folder with the template's ex3_*.py (default: generated from solutions/, as released)")
    p.add_argument("--reference", action="store_true", help="also compare everyone with the reference solution")
    p.add_argument("--k", type=int, default=K, metavar="N", help=f"tokens per k-gram (default {K})")
    p.add_argument("--window", type=int, default=WINDOW, metavar="N", help=f"winnowing window in k-grams (default {WINDOW})")
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def job() -> int:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as done:       # --help
            return int(done.code or 0)
        where = args.submissions.resolve()
        out = args.out or where.parent / f"{where.name}-similarity"
        start = time.perf_counter()
        report = similarity_report(args.submissions, out, args.threshold, args.template, args.reference,
                                   args.k, args.window, args.min_shared)
        n = len(report.submissions)
        print(f"compared {n} submissions ({len(report.pairs)} pairs) in {time.perf_counter() - start:.1f} s; "
              f"flagged: {len(report.flagged)} (similarity >= {args.threshold:g}, at least {args.min_shared} "
              f"fingerprints in common)")
        for p in report.flagged[:20]:
            a, b = report.names(p)
            print(f"  {p.similarity:6.1%}  {a}  {b}")
        if len(report.flagged) > 20:
            print(f"  ... {len(report.flagged) - 20} more")
        print(f"report: {report.html}\nall pairs: {report.csv}")
        return 0

    return run_command(job)


if __name__ == "__main__":
    sys.exit(main())
