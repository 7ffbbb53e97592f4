"""The student kit of ``make release``: what it holds, that the leak guard covers all of it, and
that it works on its own, installed into a fresh virtual environment outside the repository.

``kit``: the release and kit of a temporary course folder, built once for the module.
``kit_venv``: the kit's zip unpacked into a temporary folder (outside the repository) and
``pip install -r requirements.txt`` run there in a fresh virtual environment: the wheel of the
student library (not editable), the pinned dependencies, torch from the same pinned wheel as the
course's ``.venv`` (pip takes everything from the machine's local index). Every command runs in
that folder with a clean environment (no PYTHONPATH, a fresh HOME), so neither the repository
nor the course tooling can be reached.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, SOLUTIONS, TEMPLATE
from glyph_course.grading import autograde, kit, leakguard

pytestmark = pytest.mark.slow
TASKS = ["3.2a", "3.2b", "3.3a", "3.3b/c", "3.4a", "3.4b", "3.4c", "3.5", "3.6"]
KIT_FILES = ["README.md", "environment.yml", "ex3.ipynb", "ex3_data.py", "ex3_main.py", "ex3_model.py",
             "ex3_ood.py", "glyph_ebm-0.1.0-py3-none-any.whl", "requirements.txt"]


@pytest.fixture(scope="module")
def kit_dir(tmp_path_factory):
    course = autograde.make_course(tmp_path_factory.mktemp("course"))
    autograde.release(course)
    return course


def _pins_of(text, prefix=""):
    return [ln.strip()[len(prefix):] for ln in text.splitlines()
            if re.match(rf"\s*{re.escape(prefix)}[A-Za-z0-9_.-]+==", ln)]


def test_the_kit_holds_what_students_need_and_nothing_else(kit_dir):
    import importlib.metadata

    folder, archive = kit.kit_paths(kit_dir / "kit")
    assert sorted(p.name for p in folder.iterdir()) == KIT_FILES
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == [f"ex3/{name}" for name in KIT_FILES]
        assert z.read("ex3/ex3_main.py") == (folder / "ex3_main.py").read_bytes()
    for name in ("ex3_data.py", "ex3_main.py", "ex3_model.py", "ex3_ood.py"):
        assert (folder / name).read_text() == (TEMPLATE / name).read_text()
    assert (folder / "ex3.ipynb").read_bytes() == (kit_dir / "release" / "ex3" / "ex3.ipynb").read_bytes()
    with zipfile.ZipFile(folder / KIT_FILES[7]) as whl:
        tops = {n.split("/")[0] for n in whl.namelist()}
        assert tops == {"glyph_ebm", "glyph_ebm-0.1.0.dist-info"}
        assert "glyph_ebm/fonts/Cardo104s.ttf" in whl.namelist()
    assert leakguard.scan(kit_dir / "kit") == []
    # pins: the root pyproject's, then the notebook's at the versions of this environment
    requirements = (folder / "requirements.txt").read_text()
    notebook = [f"{n}=={importlib.metadata.version(n)}" for n in kit.NOTEBOOK_PACKAGES]
    assert _pins_of(requirements) == kit.library_pins() + notebook
    assert "torch==2.14.1" in requirements and "torchvision==0.29.1" in requirements
    assert f"./{KIT_FILES[7]}" in requirements.splitlines()
    assert _pins_of((folder / "environment.yml").read_text(), "- ") == _pins_of(requirements)
    readme = (folder / "README.md").read_text()
    for what in ("pip install -r requirements.txt", "--profile smoke", "--profile quick", "ex3.ipynb",
                 kit.not_implemented_line(folder), "Hand in"):
        assert what in readme, what
    # the wheel was built from a temporary copy: nothing left in the repository
    assert not (ROOT / "build").exists() and not (ROOT / "glyph_ebm" / "build").exists()
    assert not list((ROOT / "glyph_ebm").glob("*.egg-info"))


def test_a_solution_line_planted_in_the_library_stops_the_release(kit_dir, tmp_path):
    secret = "cdiv = e_real.mean() - e_fake.mean()"
    assert secret in leakguard.secret_lines()
    library = tmp_path / "glyph_ebm"
    shutil.copytree(ROOT / "glyph_ebm", library, ignore=shutil.ignore_patterns("__pycache__"))
    with open(library / "plots.py", "a") as fh:
        fh.write(f"\n\ndef _contrast(e_real, e_fake):\n    {secret}\n    return cdiv\n")
    before = (kit_dir / "kit" / kit.ZIP_NAME).read_bytes()
    with pytest.raises(leakguard.LeakError) as caught:
        autograde.release(kit_dir, library=library)
    message = str(caught.value)
    wheel = KIT_FILES[7]
    assert f"ex3/{wheel}!glyph_ebm/plots.py: contains secret line {secret!r}" in message
    assert f"ex3-kit.zip!ex3/{wheel}!glyph_ebm/plots.py: contains secret line {secret!r}" in message
    assert "(not written)" in message
    # the kit from before is untouched, and no staging folder is left
    assert (kit_dir / "kit" / kit.ZIP_NAME).read_bytes() == before
    assert sorted(p.name for p in (kit_dir / "kit").iterdir()) == ["ex3", kit.ZIP_NAME]


# -- installed on its own ---------------------------------------------------------------------------
def _clean_env(venv: Path, home: Path) -> dict:
    """A student's shell: the kit's venv first on PATH, a fresh HOME, pip's settings of this
    machine (where its local package index is), nothing else (no PYTHONPATH, no VIRTUAL_ENV of
    the course's .venv, no GLYPH_COURSE_ROOT, no GLYPH_EBM_CACHE)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_") or k in ("LANG", "LC_ALL", "TMPDIR")}
    return {**env, "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home),
            "PYTHONWARNINGS": "ignore", "MPLBACKEND": "Agg"}


@pytest.fixture(scope="module")
def kit_venv(kit_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("student")
    assert ROOT not in base.parents
    with zipfile.ZipFile(kit_dir / "kit" / kit.ZIP_NAME) as z:
        z.extractall(base)
    folder, venv, home = base / "ex3", base / "venv", base / "home"
    home.mkdir()
    env = _clean_env(venv, home)
    python = getattr(sys, "_base_executable", None) or shutil.which("python3")
    subprocess.run([python, "-m", "venv", str(venv)], check=True, cwd=base, env=env, timeout=300)
    start = time.monotonic()
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", "requirements.txt"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    print(f"\npip install -r requirements.txt into a fresh venv: {time.monotonic() - start:.0f} s")
    yield folder, venv, env
    # several GB (torch and its CUDA libraries): not kept in pytest's temporary folders, and
    # removed in the background (a minute or two of disk work the suite need not wait for)
    trash = venv.with_name("venv-removed")
    venv.rename(trash)
    subprocess.Popen(["rm", "-rf", str(trash)], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _run(kit_venv, args, cwd, timeout=600):
    _, venv, env = kit_venv
    return subprocess.run([str(venv / "bin" / "python"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_the_kit_installs_the_wheel_and_no_course_tooling(kit_venv):
    folder, venv, _ = kit_venv
    where = _run(kit_venv, ["-c", "import sys, glyph_ebm; print(glyph_ebm.__file__); print(sys.path)"], folder)
    assert where.returncode == 0, where.stderr
    path, sys_path = where.stdout.splitlines()
    assert Path(path).resolve().is_relative_to(venv.resolve()), path
    assert str(ROOT) not in sys_path
    course = _run(kit_venv, ["-c", "import glyph_course"], folder)
    assert course.returncode != 0 and "No module named 'glyph_course'" in course.stderr


def test_the_templates_stop_with_one_clean_line(kit_venv):
    folder, _, _ = kit_venv
    r = _run(kit_venv, ["ex3_main.py", "--profile", "smoke", "--out", "runs/template"], folder)
    assert r.returncode == 3, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [kit.not_implemented_line(folder)], r.stderr[-3000:]
    assert errors[0].startswith("error: not implemented yet: Exercise 3.2a: ")


# the released notebook run as a student runs it ("Restart & Run All"): nbclient, which jupyterlab
# in the kit's requirements brings, starts a kernel of the kit's venv (its ipykernel)
RUN_NOTEBOOK = """
import json, shutil, sys
import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
nb = nbformat.read("ex3.ipynb", as_version=4)
argv = KernelSpecManager().get_kernel_spec(nb.metadata.kernelspec.name).argv
NotebookClient(nb, timeout=600, resources={"metadata": {"path": "."}}).execute()
outputs = [o for c in nb.cells for o in c.get("outputs", [])]
print(json.dumps({"kernel": shutil.which(argv[0]) or argv[0],
                  "text": "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream"),
                  "errors": [o.get("evalue", "") for o in outputs if o.get("output_type") == "error"]}))
"""


def test_the_reference_trains_and_passes_the_notebook_in_the_kit(kit_venv, tmp_path):
    folder, venv, _ = kit_venv
    work = tmp_path / "ex3"
    shutil.copytree(folder, work)
    for path in SOLUTIONS.glob("ex3_*.py"):
        shutil.copy2(path, work / path.name)
    r = _run(kit_venv, ["ex3_main.py", "--profile", "smoke", "--out", "runs/smoke", "--no-progress"], work)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((work / "runs" / "smoke" / "metrics.json").read_text())
    assert metrics["profile"] == "smoke" and metrics["ood_auroc"]
    nb = _run(kit_venv, ["-c", RUN_NOTEBOOK], work)
    assert nb.returncode == 0, nb.stderr[-3000:]
    result = json.loads(nb.stdout.strip().splitlines()[-1])
    assert Path(result["kernel"]).parent == venv / "bin", result["kernel"]
    assert result["errors"] == []
    for task in TASKS:
        assert f"{task} sanity checks passed" in result["text"], result["text"]
