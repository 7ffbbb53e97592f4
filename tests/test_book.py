"""The course website: built offline with jupyter-book (notebooks executed), then every page
opened in headless Chromium: no console error, no request to another host, math rendered,
every image loaded. The pages show the shipped model's figures (filled in at build time), and
the build writes nothing outside ``book/_build`` (the notebook cache included)."""
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow
BOOK = ROOT / "book"
HTML = BOOK / "_build" / "html"
MATHJAX = BOOK / "_build" / "mathjax_local" / "mathjax" / "es5" / "tex-chtml.js"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


BUILD = {}


@pytest.fixture(scope="module")
def site():
    assert MATHJAX.exists(), "MathJax is missing: `make book` / `make test` fetch it into book/_build/mathjax_local"
    jb = Path(sys.executable).parent / "jupyter-book"
    root_before = set(os.listdir(ROOT))
    proc = subprocess.run([str(jb), "build", str(BOOK), "--builder", "html"], cwd=ROOT, capture_output=True,
                          text=True, timeout=1500, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    log = proc.stdout + proc.stderr
    BUILD.update(log=log, new_at_root=set(os.listdir(ROOT)) - root_before)
    assert proc.returncode == 0, log[-5000:]
    assert "Execution Failed" not in log and "Executing notebook failed" not in log, log[-5000:]
    return HTML


def pages(site):
    return sorted(p for p in site.rglob("*.html") if not {"_static", "_sources", "_images"} & set(p.parts))


def test_every_notebook_ran_in_under_five_minutes(site):
    """The build executed every notebook of notebooks/ in a fresh kernel (jupyter-cache records
    how long each took), each within the course's promise of five minutes on a CPU."""
    from jupyter_cache import get_cache

    seconds = {Path(r.uri).stem: r.data.get("execution_seconds")
               for r in get_cache(str(BOOK / "_build" / ".jupyter_cache")).list_cache_records()}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert seconds.get(nb.stem) is not None, f"{nb.name} was not executed by the build"
        assert seconds[nb.stem] < 300, f"{nb.name} took {seconds[nb.stem]:.0f} s; the course promises under 300 s"


def test_every_chapter_is_built_and_notebooks_have_their_figures(site):
    built = {p.relative_to(site).as_posix() for p in pages(site)}
    for name in ("intro", "theory/ebm", "theory/sampling", "theory/training", "theory/jem", "theory/ood",
                 "exercise", "references", "notebooks/01_ebm_theory", "notebooks/02_glyph_dataset",
                 "notebooks/03_exercise_walkthrough"):
        assert f"{name}.html" in built, name
    for nb in (site / "notebooks").glob("*.html"):
        text = nb.read_text()
        assert text.count("<img") >= 3, f"{nb.name}: figures missing"
        assert "output_error" not in text and "Traceback (most recent call last)" not in text, nb.name


def test_pages_show_the_shipped_models_figures(site):
    """Run figures come from pretrained/jem_quick.pt at build time (book/_ext/run_figures.py)."""
    from test_run_figures import EXPECTED, page_text

    from glyph_course import pretrained

    figures = pretrained.figures()
    for name, keys in EXPECTED.items():
        text = page_text(site / f"{name}.html")
        missing = {key: figures[key] for key in keys if figures[key] not in text}
        assert not missing, f"{name}: the shipped model's figures {missing} are not on the page"
    for page in pages(site):
        assert "{{" not in page_text(page), f"{page.relative_to(site)}: a substitution was left unfilled"


def test_the_build_stays_inside_book_build(site):
    """`make book` runs jupyter-book from the repository root; the notebook cache must land in
    book/_build/.jupyter_cache, not in a _build/ of the folder the build was started from."""
    used = re.search(r"Using jupyter-cache at: (\S+)", BUILD["log"])
    assert used is not None and Path(used.group(1)) == (BOOK / "_build" / ".jupyter_cache").resolve(), \
        (used.group(0) if used else BUILD["log"][-2000:])
    assert (BOOK / "_build" / ".jupyter_cache").is_dir()
    assert "_build" not in BUILD["new_at_root"], f"the build wrote {sorted(BUILD['new_at_root'])} at the repository root"


def test_no_page_asks_for_a_remote_resource(site):
    """No script, stylesheet, image or frame comes from another host (plain links to papers
    are fine: they are not loaded when the page is viewed)."""
    remote = re.compile(r"<(script|link|img|iframe|source|embed)\b[^>]*\b(?:src|href)=[\"'](?:https?:)?//", re.I)
    for page in pages(site):
        found = remote.search(page.read_text())
        assert found is None, f"{page.relative_to(site)}: {found.group(0)}"
    assert (site / "mathjax" / "es5" / "tex-chtml.js").exists(), "the local MathJax copy is part of the site"


@pytest.fixture(scope="module")
def server(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_every_page_renders_offline_in_chromium(site, server):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed and could not be installed (make chromium); "
                    "the browser check of the book is skipped")
    from playwright.sync_api import sync_playwright

    problems = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for path in pages(site):
            rel = path.relative_to(site).as_posix()
            page = browser.new_page()
            errors, foreign = [], []
            page.on("console", lambda msg, errors=errors: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
            page.on("response", lambda resp, errors=errors: errors.append(f"HTTP {resp.status} for {resp.url}")
                    if resp.status >= 400 else None)
            page.on("request", lambda req, foreign=foreign: foreign.append(req.url)
                    if urlparse(req.url).scheme in ("http", "https") and urlparse(req.url).hostname not in LOCAL_HOSTS
                    else None)
            page.set_default_timeout(180_000)          # generous: CI machines are busy
            page.goto(f"{server}/{rel}", wait_until="networkidle")
            page.evaluate("""async () => {
                window.scrollTo(0, document.body.scrollHeight);        // wake lazily loaded images
                await Promise.all([...document.images].map(i => i.decode().catch(() => null)));
                if (window.MathJax && MathJax.startup) { await MathJax.startup.promise; }
            }""")
            state = page.evaluate("""() => ({
                broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
                mathSource: document.querySelectorAll('.math, .MathJax_Preview, script[type^="math/tex"]').length,
                rendered: document.querySelectorAll('mjx-container').length,
                text: document.querySelector('main, article, body').innerText,
            })""")
            if errors:
                problems.append(f"{rel}: console errors {errors[:3]}")
            if foreign:
                problems.append(f"{rel}: requests to other hosts {foreign[:3]}")
            if state["broken"]:
                problems.append(f"{rel}: images that did not load {state['broken'][:3]}")
            if "$$" in state["text"] or "\\begin{" in state["text"]:
                problems.append(f"{rel}: raw TeX left in the page")
            if state["mathSource"] and not state["rendered"]:
                problems.append(f"{rel}: {state['mathSource']} math elements but nothing rendered by MathJax")
            page.close()
        browser.close()
    assert not problems, "\n".join(problems)
