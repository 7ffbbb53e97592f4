"""Student code is contained while it is graded (glyph_course.grading.sandbox): a submission that
tries to read the reference, the gradebook or another student's files, to open a network
connection, to fork without end or to fill the disk gets nothing, costs only the task its code
belongs to, and the batch goes on with the gradebook intact. Graded with two jobs at once."""
import os
import re
import socket
import threading

import pytest

import grading_cases as cases
from glyph_course.grading import autograde, sandbox
from glyph_course.paths import SOLUTIONS

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sandbox.level() != "namespaces",
                                 reason="full containment needs Linux, root and unshare (what CI has)")]
TASKS = ["3.2a", "3.2b", "3.3a", "3.3b/c", "3.4a", "3.4b", "3.4c", "3.5", "3.6"]
LEAK = "LEAKED"


def _attempt(body: str, indent: str) -> str:
    """Code that runs ``body`` (which sets ``found``) and raises either way: with LEAKED and what
    it got when the attempt succeeds, with the error the sandbox gave when it does not."""
    lines = ["try:", *("    " + line for line in body.splitlines()), "except OSError as exc:",
             "    raise RuntimeError(f'blocked: {exc}')", "raise RuntimeError(f'" + LEAK + ": {found!r}')"]
    return "".join(f"{indent}{line}\n" for line in lines)


@pytest.fixture(scope="module")
def listener():
    """A TCP server on this machine's loopback; records every connection it gets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    seen, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            seen.append(conn.recv(100))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join()
    server.close()


@pytest.fixture(scope="module")
def graded(tmp_path_factory, listener):
    port, _ = listener
    root = tmp_path_factory.mktemp("contained")
    course = autograde.make_course(root / "course")
    subs = root / "submissions"
    cases.build([], subs / "honest" / "ex3")
    other = subs / "honest" / "ex3" / "ex3_main.py"
    attempts = {
        # (task whose code tries it, file, the line the attempt goes before, the attempt)
        "read_reference": ("3.6", "ex3_main.py", "    id_scores = energy_scores(model, id_images)\n",
                           f"found = open({str(SOLUTIONS / 'ex3_main.py')!r}).read()[:80]"),
        "read_gradebook": ("3.4b", "ex3_main.py", "        x, y = batch\n        # BEGIN SOLUTION 3.4b",
                           f"found = open({str(course / 'gradebook.db')!r}, 'rb').read(16)\n"
                           f"open({str(course / 'gradebook.db')!r}, 'wb').write(b'corrupted')"),
        "read_other_student": ("3.3a", "ex3_main.py", "        # BEGIN SOLUTION 3.3a: write chains back",
                               f"found = open({str(other)!r}).read()[:80]"),
        "network": ("3.4c", "ex3_main.py", "        # BEGIN SOLUTION 3.4c",
                    f"import socket\nconn = socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
                    "conn.sendall(b'hello from a submission')\nfound = 'a connection'"),
        "fork_bomb": ("3.5", "ex3_main.py", "    keep = chain_steps(K)\n",
                      "import os, time\nfound = 0\nfor _ in range(3000):\n"
                      "    if os.fork() == 0:\n        time.sleep(120)\n        os._exit(0)\n"
                      "    found += 1"),
        "fill_disk": ("3.2b", "ex3_model.py", "        # BEGIN SOLUTION 3.2b",
                      "with open('filler.bin', 'wb') as fh:\n    for _ in range(3000):\n"
                      "        fh.write(b'x' * 2 ** 20)\nfound = '3 GB written'"),
    }
    # two kernels that only report the user id they run under (3.2b fails with it)
    for name in ("uid_a", "uid_b"):
        cases.build([cases.Edit("ex3_model.py", "        # BEGIN SOLUTION 3.2b",
                                "        raise RuntimeError(f'kernel uid {__import__(\"os\").getuid()}')\n"
                                "        # BEGIN SOLUTION 3.2b")], subs / name / "ex3")
    tasks = {}
    for name, (task, file, anchor, body) in attempts.items():
        indent = anchor[:len(anchor) - len(anchor.lstrip())]
        cases.build([cases.Edit(file, anchor, _attempt(body, indent) + anchor)], subs / name / "ex3")
        tasks[name] = task
    results = {r.student: r for r in autograde.autograde(subs, course, jobs=2, progress=lambda *_: None)}
    return course, results, tasks


def test_the_honest_submission_next_to_them_gets_full_marks(graded):
    _, results, _ = graded
    assert results["honest"].total == 34, results["honest"].report()


@pytest.mark.parametrize("name", ["read_reference", "read_gradebook", "read_other_student", "network",
                                  "fork_bomb", "fill_disk"])
def test_an_attempt_gets_nothing_and_costs_only_its_own_task(graded, name):
    _, results, tasks = graded
    result = results[name]
    task = tasks[name]
    assert result.tasks[task][0] < result.tasks[task][1], result.report()
    assert all(result.tasks[t][0] == result.tasks[t][1] for t in TASKS if t != task), result.report()
    messages = " ".join(m for ms in result.messages.values() for m in ms)
    assert LEAK not in messages and "blocked" in messages, result.report()


def test_every_kernel_runs_under_a_user_id_of_its_own(graded):
    """Process limits count per user: kernels sharing an id would share one limit, and a fork bomb
    next door would keep an honest kernel from starting its threads."""
    _, results, _ = graded
    uids = []
    for name in ("uid_a", "uid_b"):
        found = re.findall(r"kernel uid (\d+)", " ".join(results[name].messages["3.2b"]))
        assert found, results[name].report()
        uids.append(int(found[0]))
    assert len(set(uids)) == 2 and 0 not in uids, uids


def test_the_zygote_and_its_kernels_write_to_a_log_not_to_an_unread_pipe(graded):
    """The zygote's stdout was a pipe its parent stops reading after the ready line; kernels forked
    from it inherit it, and after about 140 kernels the pipe was full and the next one hung."""
    from glyph_course.grading import zygote

    if not zygote.available():
        pytest.skip("grading here does not use the zygote")
    zygote.socket_path()                              # the (already started) zygote of this process
    pid = zygote._zygote["proc"].pid
    for fd in (1, 2):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        assert not target.startswith("pipe:"), (fd, target)
    assert os.readlink(f"/proc/{pid}/fd/1").endswith("kernels.log")


def test_no_connection_reached_the_machine(graded, listener):
    _, seen = listener
    assert seen == []


def test_the_gradebook_is_intact(graded):
    from nbgrader.api import Gradebook

    course, results, _ = graded
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        students = {s.id for s in gb.students}
        assert students >= set(results)
        honest = gb.find_submission("ex3", "honest")
        assert honest.score == 34


def test_without_the_warm_zygote_the_kernel_is_contained_the_same_way(tmp_path, monkeypatch):
    """GLYPH_EBM_NO_ZYGOTE=1: every kernel is a fresh process started through ``unshare``."""
    monkeypatch.setenv("GLYPH_EBM_NO_ZYGOTE", "1")
    course = autograde.make_course(tmp_path / "course")
    anchor = "    id_scores = energy_scores(model, id_images)\n"
    cases.build([cases.Edit("ex3_main.py", anchor, _attempt(
        f"found = open({str(SOLUTIONS / 'ex3_main.py')!r}).read()[:80]", "    ") + anchor)],
        tmp_path / "subs" / "read_reference" / "ex3")
    (result,) = autograde.autograde(tmp_path / "subs", course, feedback=False, progress=lambda *_: None)
    assert result.tasks["3.6"][0] < 4 and result.total == 30, result.report()
    messages = " ".join(result.messages["3.6"])
    assert LEAK not in messages and "blocked" in messages, messages
