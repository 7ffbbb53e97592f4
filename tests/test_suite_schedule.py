"""``benchmarks/suite_schedule.py`` replays pytest-xdist's ``loadfile`` hand-out on measured test
times; docs/measurements.md quotes its figures, so its rule is checked on a small case worked out
by hand."""
import importlib.util

from conftest import ROOT

spec = importlib.util.spec_from_file_location("suite_schedule", ROOT / "benchmarks" / "suite_schedule.py")
schedule = importlib.util.module_from_spec(spec)
spec.loader.exec_module(schedule)

FILES = {"long.py": [100.0], "mid.py": [50.0], "many.py": [1.0] * 5, "x.py": [1.0] * 3}


def test_in_conftests_order_each_worker_takes_a_second_file_while_one_test_is_pending():
    clock, ran = schedule.replay(FILES, ["long.py", "mid.py"], reorder=False)
    assert ran == [["long.py", "many.py"], ["mid.py", "x.py"]]
    assert clock == [105.0, 53.0]


def test_a_file_is_handed_out_when_a_test_ends_not_when_it_starts():
    # worker 0 is busy with the 100-s test until t = 100; worker 1 asks for more at t = 1
    files = {"a.py": [100.0], "b.py": [1.0] * 3, "c.py": [10.0], "d.py": [10.0]}
    clock, ran = schedule.replay(files, ["a.py"], reorder=False)
    assert ran == [["a.py", "c.py"], ["b.py", "d.py"]]
    assert clock == [110.0, 13.0]


def test_xdists_reorder_hands_out_the_files_with_most_tests_first():
    clock, ran = schedule.replay(FILES, ["long.py", "mid.py"], reorder=True)
    assert ran == [["many.py"], ["x.py", "long.py", "mid.py"]]
    assert clock == [5.0, 153.0]


def test_the_times_are_read_per_file_from_junit_and_the_order_from_conftest(tmp_path):
    junit = tmp_path / "suite.xml"
    junit.write_text('<testsuites><testsuite name="pytest">'
                     '<testcase classname="tests.test_a" name="one" time="1.5"/>'
                     '<testcase classname="tests.test_a" name="two" time="2"/>'
                     '<testcase classname="tests.test_b" name="one" time="4"/>'
                     '</testsuite></testsuites>')
    assert schedule.test_times(junit) == {"test_a.py": [1.5, 2.0], "test_b.py": [4.0]}
    import conftest

    assert schedule.long_files() == conftest.LONG_FILES
