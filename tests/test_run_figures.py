"""Figures of the shipped model are generated, never typed.

The course website fills MyST substitutions (``{{ test_accuracy }}``, ``{{ auroc_rotated }}``,
...) from ``pretrained/jem_quick.pt`` when it is built (``book/_ext/run_figures.py``), and the
README (and ``docs/measurements.md``) hold a block between marker comments that ``make
pretrained`` rewrites. These tests build the Markdown pages of the site (no notebooks: seconds)
and compare what they show with the file, check that no page types such a figure, that the
generated blocks match, and that the notebook cache stays inside the build folder."""
import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from glyph_course import pretrained

BOOK = ROOT / "book"
#: the run figures each page must show, by the keys of :func:`glyph_course.pretrained.figures`
EXPECTED = {
    "theory/jem": ["test_accuracy", "steps"],
    "theory/ood": [f"auroc_{name}" for name in pretrained.OOD_SETS],
}
#: a typed run figure: a number with three decimals near the words a run's figures come with
TYPED = re.compile(r"(accuracy|AUROC)[^.]{0,200}?\b[01]\.\d{3}\b|\b[01]\.\d{3}\b[^.]{0,60}?(accuracy|AUROC)")


@pytest.fixture(scope="module")
def figures():
    return pretrained.figures(pretrained.info())


def _markdown_pages():
    """The book's own Markdown pages (not the notebooks), as names without suffix."""
    return sorted(p.relative_to(BOOK).with_suffix("").as_posix() for p in BOOK.rglob("*.md")
                  if "_build" not in p.parts and p.name != "README.md" and "notebooks" not in p.parts)


def page_text(page: Path) -> str:
    main = re.search(r"<main\b.*?</main>", page.read_text(), re.S)
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", main.group(0) if main else page.read_text(), flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The site's Markdown pages built with the book's real configuration, started from a
    folder that is neither the book nor the output (where a cwd-relative path would land)."""
    tmp = tmp_path_factory.mktemp("book")
    toc = tmp / "_toc.yml"
    pages = [p for p in _markdown_pages() if p != "intro"]
    toc.write_text(yaml.safe_dump({"format": "jb-book", "root": "intro",
                                   "chapters": [{"file": p} for p in pages]}))
    start, out = tmp / "started_here", tmp / "out"
    start.mkdir()
    jb = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run([str(jb), "build", str(BOOK), "--toc", str(toc), "--path-output", str(out),
                           "--builder", "html"], cwd=start, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return {"html": out / "_build" / "html", "out": out, "start": start, "log": log}


def test_the_extension_fills_what_the_shipped_file_stores(figures):
    spec = importlib.util.spec_from_file_location("run_figures", BOOK / "_ext" / "run_figures.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    assert ext.weights_file(BOOK) == pretrained.DEFAULT.resolve()
    assert ext.substitutions(BOOK) == figures
    stored = pretrained.info()["metrics"]
    assert figures["test_accuracy"] == f"{stored['test_accuracy']:.3f}"
    assert figures["auroc_rotated"] == f"{stored['ood_auroc']['rotated']:.3f}"
    config = yaml.safe_load((BOOK / "_config.yml").read_text())
    assert "substitution" in config["parse"]["myst_enable_extensions"]
    assert "run_figures" in config["sphinx"]["local_extensions"]


def test_built_pages_show_the_shipped_models_figures(built, figures):
    for name, keys in EXPECTED.items():
        text = page_text(built["html"] / f"{name}.html")
        for key in keys:
            assert figures[key] in text, (f"{name}: the shipped model's {key} ({figures[key]}) is not on the "
                                          f"built page; write {{{{ {key} }}}} instead of a typed number")
    for name in _markdown_pages():
        text = page_text(built["html"] / f"{name}.html")
        assert "{{" not in text, f"{name}: a substitution was left unfilled"


def test_no_page_types_a_run_figure():
    """Run figures are substitutions; a typed one goes stale with the next `make pretrained`."""
    for name in _markdown_pages():
        for paragraph in re.split(r"\n\s*\n", (BOOK / f"{name}.md").read_text()):
            found = TYPED.search(" ".join(paragraph.split()))
            assert found is None, (f"book/{name}.md: {found.group(0)!r} looks like a typed run figure; "
                                   "use a substitution ({{ test_accuracy }}, {{ auroc_<set> }}, ...)")


def test_generated_blocks_match_the_shipped_model():
    expected = pretrained.figures_block()
    holders = [p for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
               if pretrained.BEGIN.split(":")[0] in p.read_text()]
    assert ROOT / "README.md" in holders, "README.md lost its generated figures block"
    for path in holders:
        block = re.search(re.escape(pretrained.BEGIN.split(":")[0]) + r".*?" + re.escape(pretrained.END),
                          path.read_text(), re.S)
        assert block is not None and block.group(0) == expected, (
            f"{path.relative_to(ROOT)}: the figures block differs from pretrained/jem_quick.pt; run "
            f"`glyph-course pretrained --figures {path.relative_to(ROOT)}` (make pretrained does it)")


def test_the_block_reports_the_judged_samples_when_the_run_has_them():
    meta = pretrained.info()
    judged = {"inception_score": 12.34, "classes_covered": 17, "n": 64, "steps": 99}
    meta = {**meta, "metrics": {**meta["metrics"], "samples": judged}}
    block = pretrained.figures_block(meta)
    assert "Its 64 samples (99 SGLD steps from noise)" in block
    assert f"inception score 12.3, 17 of the {meta['num_classes']} classes" in block
    del meta["metrics"]["samples"]
    assert "inception score" not in pretrained.figures_block(meta)


def test_write_figures_block_rewrites_only_the_block(tmp_path):
    page = tmp_path / "README.md"
    page.write_text(f"intro\n\n{pretrained.BEGIN}\nold 0.944\n{pretrained.END}\n\nend — ü\n", encoding="utf-8")
    assert pretrained.write_figures_block(page) is True
    assert page.read_text(encoding="utf-8") == f"intro\n\n{pretrained.figures_block()}\n\nend — ü\n"
    assert pretrained.write_figures_block(page) is False
    (tmp_path / "plain.md").write_text("no block\n")
    with pytest.raises(Exception, match="no figures block"):
        pretrained.write_figures_block(tmp_path / "plain.md")


def test_the_notebook_cache_stays_in_the_build_folder(built):
    used = re.search(r"Using jupyter-cache at: (\S+)", built["log"])
    assert used is not None, built["log"][-2000:]
    assert Path(used.group(1)) == (built["out"] / "_build" / ".jupyter_cache").resolve(), used.group(0)
    assert not any(built["start"].iterdir()), "the build wrote into the folder it was started from"
