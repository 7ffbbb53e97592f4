"""The student kit: one folder (and a zip of it) that is all a student needs for exercise 3.

``make release`` (:func:`.autograde.release`) writes, next to nbgrader's ``release/ex3/``::

    autograde/kit/ex3/
        ex3_data.py ex3_main.py ex3_model.py ex3_ood.py   the templates
        ex3.ipynb                                         the released notebook (no hidden tests)
        glyph_ebm-<version>-py3-none-any.whl              the student library, built from the root project
        requirements.txt environment.yml                  the wheel + pinned dependencies (pip / conda)
        README.md                                         install, check, run, hand in
    autograde/kit/ex3-kit.zip                             the folder above, zipped (top folder ex3/)

One source of truth for every text: the pins are the root ``pyproject.toml``'s dependencies
plus :data:`NOTEBOOK_PACKAGES` at the versions installed beside the course tooling (the
``.venv`` of ``make setup``); the README's task table and its example error line are read
from the templates themselves. The wheel is built with ``pip wheel --no-deps
--no-build-isolation`` from a temporary copy of ``pyproject.toml`` and the library folder, so no
``build/`` or ``.egg-info`` is left in the repository.

The kit is assembled in a staging folder and checked by the leak guard as a whole: every file
of the folder and every file inside the wheel and the zip. Only a clean kit replaces the
previous one; a leak raises :class:`~.leakguard.LeakError` listing the findings and leaves
nothing new behind.
"""
from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from glyph_ebm.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, GlyphEBMError
from glyph_ebm.runner import EXIT_NOT_IMPLEMENTED

from ..paths import ROOT
from ..template import EXERCISE_FILES
from .kit_readme import README
from .leakguard import leak_error, scan

KIT_NAME = "ex3"                        # the kit's folder, also the top folder inside the zip
ZIP_NAME = "ex3-kit.zip"
NOTEBOOK = "ex3.ipynb"
ENV_NAME = "glyph-ebm-ex3"              # the conda environment of environment.yml
LIBRARY = ROOT / "glyph_ebm"            # the student library's package folder ...
PYPROJECT = ROOT / "pyproject.toml"     # ... and the project that builds it
#: what students need besides the library to run the checks in ex3.ipynb (pinned to the versions
#: installed beside the course tooling); jupyterlab brings nbclient, ipykernel the kernel
NOTEBOOK_PACKAGES = ("jupyterlab", "ipykernel")


class KitError(GlyphEBMError):
    """The kit could not be built (the message says which step and why)."""


@dataclass
class Kit:
    folder: Path
    zip: Path
    wheel: Path

    def files(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir())


def kit_paths(kit_dir: Path) -> tuple[Path, Path]:
    """``(folder, zip)`` of the kit in ``kit_dir``."""
    return Path(kit_dir) / KIT_NAME, Path(kit_dir) / ZIP_NAME


# -- pins ---------------------------------------------------------------------------------------
def _load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:          # Python 3.10
        import tomli as tomllib
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def library_pins(pyproject: Path = PYPROJECT) -> list[str]:
    """The student library's dependencies, each pinned with ``==`` (else :class:`KitError`)."""
    deps = _load_toml(pyproject)["project"].get("dependencies", [])
    loose = [d for d in deps if not re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+-]+", d.strip())]
    if loose:
        raise KitError(f"{pyproject}: the student kit needs pinned dependencies (NAME==VERSION); not pinned: "
                       f"{', '.join(loose)}")
    return [d.strip() for d in deps]


def notebook_pins() -> list[str]:
    """:data:`NOTEBOOK_PACKAGES` at the versions installed here."""
    pins = []
    for name in NOTEBOOK_PACKAGES:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            raise KitError(f"{name} is not installed beside the course tooling; the kit pins it to the installed "
                           "version: run `make setup`") from None
    return pins


def _python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def requirements_text(wheel: str, pins: list[str], notebook: list[str]) -> str:
    return "\n".join([
        "# Exercise 3 of the glyph-ebm course: every package, pinned (written by `make release`).",
        f"# In this folder, inside a fresh virtual environment (Python {_python()}):",
        "#   pip install -r requirements.txt",
        "# the course's support library (from the wheel in this folder)",
        f"./{wheel}",
        "# what it needs",
        *pins,
        "# to run the checks in ex3.ipynb",
        *notebook, ""])


def environment_text(wheel: str, pins: list[str], notebook: list[str]) -> str:
    return "\n".join([
        "# Conda environment for exercise 3 (written by `make release`; the same pins as requirements.txt).",
        f"#   conda env create -f environment.yml && conda activate {ENV_NAME}",
        f"name: {ENV_NAME}",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        f"  - python={_python()}",
        "  - pip",
        "  - pip:",
        *(f"      - {line}" for line in (f"./{wheel}", *pins, *notebook)), ""])


# -- the README ---------------------------------------------------------------------------------
def exercise_raises(folder: Path) -> list[tuple[str, str, int, str, str]]:
    """``(file, function, line, task, hint)`` of every ``NotImplementedError("Exercise ...")``
    in the templates in ``folder``, in the order of the files and lines."""
    found = {}
    for name in EXERCISE_FILES:
        tree = ast.parse((folder / name).read_text())
        for func in ast.walk(tree):      # outer functions first: a nested one overrides them
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                msg = node.exc.args[0].value if (
                    isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args
                    and getattr(node.exc.func, "id", None) == "NotImplementedError"
                    and isinstance(node.exc.args[0], ast.Constant)) else None
                m = re.match(r"Exercise (\S+): (.*)", msg, re.S) if isinstance(msg, str) else None
                if m:
                    found[name, node.lineno] = (name, func.name, node.lineno, m.group(1), m.group(2))
    return sorted(found.values(), key=lambda r: (EXERCISE_FILES.index(r[0]), r[2]))


def not_implemented_line(folder: Path) -> str:
    """The line ``python ex3_main.py`` prints for the first task of the unchanged templates."""
    name, func, line, task, hint = exercise_raises(folder)[0]
    return f"error: not implemented yet: Exercise {task}: {hint} [{name}:{line} ({func})]"


def readme_text(folder: Path, wheel: str, pins: list[str], notebook: list[str]) -> str:
    raises = exercise_raises(folder)
    with_tasks = {name: sorted({r[3] for r in raises if r[0] == name}) for name in EXERCISE_FILES}
    described = {
        **{name: f"an exercise file with the task(s) {', '.join(tasks)}" if tasks else
           "an exercise file without a task of its own (read it: the others use it)"
           for name, tasks in with_tasks.items()},
        NOTEBOOK: "the checks of every task (run it, do not edit it)",
        wheel: "the course's support library `glyph_ebm` (installed by `requirements.txt`)",
        "requirements.txt": "the packages to install, pinned (pip)",
        "environment.yml": "the same for conda",
        "README.md": "this text",
    }
    rows, seen = [], set()
    for name, func, _, task, _ in raises:
        if (task, name, func) not in seen:
            seen.add((task, name, func))
            rows.append(f"| {task} | `{name}` | `{func}` |")
    return README.substitute(
        files="\n".join(f"* `{name}`: {what}" for name, what in described.items()),
        python=_python(), env_name=ENV_NAME,
        pins="\n".join(f"* `{pin}`" for pin in (*pins, *notebook)),
        tasks="\n".join(rows),
        exit_not_implemented=EXIT_NOT_IMPLEMENTED, exit_user_error=EXIT_USER_ERROR,
        exit_interrupted=EXIT_INTERRUPTED,
        not_implemented=not_implemented_line(folder),
        handin=", ".join(f"`{name}`" for name in sorted(EXERCISE_FILES)))


# -- building -----------------------------------------------------------------------------------
def build_wheel(out_dir: Path, library: Path = LIBRARY, pyproject: Path = PYPROJECT) -> Path:
    """Build the student library's wheel into ``out_dir`` from a temporary copy of
    ``pyproject`` and the package folder ``library``; returns the wheel's path."""
    library, out_dir = Path(library), Path(out_dir)
    if not (library / "__init__.py").exists():
        raise KitError(f"{library} is not the student library's package folder (no __init__.py)")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="glyph-ebm-wheel-") as tmp:
        src, dist = Path(tmp) / "src", Path(tmp) / "dist"
        src.mkdir()
        shutil.copy2(pyproject, src / "pyproject.toml")
        shutil.copytree(library, src / "glyph_ebm",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".ipynb_checkpoints"))
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True,
                              env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONWARNINGS": "ignore"})
        wheels = sorted(dist.glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise KitError(f"building the student library's wheel failed ({' '.join(cmd[2:5])}):\n{tail}")
        return Path(shutil.copy2(wheels[0], out_dir / wheels[0].name))


def _zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{KIT_NAME}/{path.relative_to(folder).as_posix()}")
    return target


def build_kit(release_dir: Path, kit_dir: Path, library: Path = LIBRARY, pyproject: Path = PYPROJECT) -> Kit:
    """Assemble the kit from nbgrader's ``release_dir`` (templates + notebook) and the library,
    check all of it with the leak guard, then replace ``kit_dir/ex3`` and ``kit_dir/ex3-kit.zip``."""
    release_dir, kit_dir = Path(release_dir), Path(kit_dir)
    kit_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=kit_dir))
    try:
        folder = staging / KIT_NAME
        folder.mkdir()
        for name in (*EXERCISE_FILES, NOTEBOOK):
            if not (release_dir / name).exists():
                raise KitError(f"{release_dir} has no {name}; the kit is built from a complete release")
            shutil.copy2(release_dir / name, folder / name)
        wheel = build_wheel(folder, library, pyproject).name
        pins, notebook = library_pins(pyproject), notebook_pins()
        (folder / "requirements.txt").write_text(requirements_text(wheel, pins, notebook))
        (folder / "environment.yml").write_text(environment_text(wheel, pins, notebook))
        (folder / "README.md").write_text(readme_text(folder, wheel, pins, notebook))
        _zip(folder, staging / ZIP_NAME)
        findings = scan(staging)
        if findings:
            raise leak_error(findings, "the student kit (not written)", kit_dir)
        target, target_zip = kit_paths(kit_dir)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(folder, target)
        os.replace(staging / ZIP_NAME, target_zip)
        return Kit(target, target_zip, target / wheel)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
