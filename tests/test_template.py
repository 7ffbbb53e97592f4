"""The student template ex3/ is generated from solutions/ and must stay in sync."""
import subprocess

import pytest

from conftest import PYTHON, ROOT, SOLUTIONS, TEMPLATE, run_cli
from glyph_course.template import MarkerError, solution_blocks, stale_template_files, strip_solutions


def test_committed_template_is_current():
    stale = stale_template_files()
    assert not stale, f"ex3/ is stale ({', '.join(stale)}); run `make template` and commit ex3/"


def test_template_contains_no_solution_code():
    for name in ("ex3_model.py", "ex3_main.py"):
        ref = (SOLUTIONS / name).read_text()
        student = (TEMPLATE / name).read_text()
        assert "BEGIN SOLUTION" not in student
        for block in solution_blocks(ref):
            body = [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.strip().startswith("#")]
            assert body, "empty solution block"
            assert "\n".join(body) not in student


def test_strip_replaces_block_by_numbered_not_implemented_error():
    src = ("def f(x):\n"
           "    '''doc'''\n"
           "    # BEGIN SOLUTION 3.2a: compute the thing\n"
           "    return x + 1\n"
           "    # END SOLUTION\n")
    out = strip_solutions(src)
    assert "return x + 1" not in out
    assert '    raise NotImplementedError("Exercise 3.2a: compute the thing")\n' in out
    assert out.startswith("def f(x):\n    '''doc'''\n")


@pytest.mark.parametrize("bad", [
    "# BEGIN SOLUTION 3.1\nx = 1\n",
    "x = 1\n# END SOLUTION\n",
    "# BEGIN SOLUTION 3.1\n# BEGIN SOLUTION 3.2\n# END SOLUTION\n",
])
def test_unbalanced_markers_are_reported(bad):
    with pytest.raises(MarkerError):
        strip_solutions(bad, "f.py")


def test_template_imports_and_stops_at_the_first_task():
    r = run_cli(["--profile", "smoke", "--out", ROOT / "runs" / "_template_check", "--overwrite",
                 "--no-progress"], cwd=TEMPLATE, timeout=300)
    assert r.returncode == 3, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert "Exercise 3.2a" in last and "Traceback" not in r.stderr


def test_template_modules_raise_numbered_errors():
    code = ("import torch, ex3_model, ex3_main\n"
            "m = ex3_model.CNNModel.__new__(ex3_model.CNNModel)\n"
            "torch.nn.Module.__init__(m)                      # a network without the layers of 3.2a\n"
            "for call in (lambda: ex3_model.CNNModel(3, hidden=4), lambda: m.get_logits(torch.zeros(1,1,8,8)),\n"
            "             lambda: m(torch.zeros(1,1,8,8)),\n"
            "             lambda: ex3_main.MCMCSampler(torch.nn.Linear(1, 1), (1,8,8), 2).sample_initial(2)):\n"
            "    try:\n        call()\n    except NotImplementedError as e:\n        print(str(e).split(':')[0])\n")
    out = subprocess.run([PYTHON, "-c", code], cwd=TEMPLATE, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["Exercise", "3.2a", "Exercise", "3.2a", "Exercise", "3.2b", "Exercise", "3.3a"], out.stderr
