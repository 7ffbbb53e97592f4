"""Packaging facts that must agree across files."""
import re
import tomllib

from conftest import ROOT


def _pins_from_pyproject():
    """The student library's pins (pyproject.toml) and the course tooling's (course/pyproject.toml)."""
    library = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    tooling = tomllib.loads((ROOT / "course" / "pyproject.toml").read_text())["project"]
    deps = library["dependencies"] + tooling["dependencies"] + tooling["optional-dependencies"]["test"]
    pins = dict(re.match(r"([A-Za-z0-9_.-]+)==(\S+)", d).groups() for d in deps)
    assert pins.pop("glyph-ebm") == library["version"], "the course tooling must pin this student library"
    return pins


def _pins_from_environment():
    pins = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"\s*-\s*([A-Za-z0-9_.-]+)==(\S+)\s*$", line)
        if m:
            pins[m.group(1)] = m.group(2)
    return pins


def test_environment_yml_pins_the_same_versions_as_pyproject():
    py, env = _pins_from_pyproject(), _pins_from_environment()
    assert py, "no pinned dependencies found in pyproject.toml"
    assert py == env


def test_torch_pins_follow_the_course_machine():
    py = _pins_from_pyproject()
    assert py["torch"] == "2.14.1" and py["torchvision"] == "0.29.1"


def test_ci_runs_make_test():
    text = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test\s*$", text, re.M)


def test_make_test_keeps_the_order_of_the_long_test_files():
    """``tests/conftest.py`` puts the files that take minutes first; pytest-xdist's ``loadfile``
    reorders files by their number of tests unless told not to, which starts the one-test files
    (the demo run, the book build) last and leaves one worker alone with them at the end."""
    calls = [line for line in (ROOT / "Makefile").read_text().splitlines() if "-m pytest" in line]
    assert calls, "no pytest call in the Makefile"
    for line in calls:
        if "--dist loadfile" in line or "--dist=loadfile" in line:
            assert "--no-loadscope-reorder" in line, line
