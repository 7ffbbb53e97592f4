"""Batch grading: several submissions at once give the same grades as one at a time, an
interrupted batch keeps what was graded and a rerun grades only the rest (and a changed
submission again), and a dask.distributed cluster can take the place of the local pool."""

import pytest

import grading_cases as cases
from glyph_course.grading import autograde, batch

pytestmark = pytest.mark.slow
BATCH = ("reference", "noise_missing")


def _submissions(root):
    for name in BATCH:
        if name == "reference":
            cases.build([], root / name / "ex3")
        else:
            cases.build(next(c for c in cases.MUTANTS if c.name == name), root / name / "ex3")
    return root


def _grades(results):
    return {r.student: {t: got for t, (got, _) in r.tasks.items()} for r in results}


@pytest.fixture(scope="module")
def one_at_a_time(tmp_path_factory):
    root = tmp_path_factory.mktemp("serial")
    course = autograde.make_course(root / "course")
    results = autograde.autograde(_submissions(root / "subs"), course, jobs=1, feedback=False, progress=lambda *_: None)
    return _grades(results)


def test_two_jobs_give_the_same_grades_as_one(tmp_path, one_at_a_time):
    course = autograde.make_course(tmp_path / "course")
    results = autograde.autograde(_submissions(tmp_path / "subs"), course, jobs=2, feedback=False,
                                  progress=lambda *_: None)
    assert _grades(results) == one_at_a_time
    assert one_at_a_time["reference"] == {t: p for t, (_, p) in results[0].tasks.items()}   # full marks


def test_an_interrupted_batch_keeps_what_was_graded_and_a_rerun_grades_the_rest(tmp_path, monkeypatch,
                                                                             one_at_a_time):
    course = autograde.make_course(tmp_path / "course")
    subs = _submissions(tmp_path / "subs")
    run_jobs = batch.run_jobs

    def stop_after_one(jobs, done, **kwargs):
        def count(result):
            done(result)
            raise KeyboardInterrupt
        run_jobs(jobs, count, **kwargs)

    monkeypatch.setattr(batch, "run_jobs", stop_after_one)
    with pytest.raises(KeyboardInterrupt):
        autograde.autograde(subs, course, jobs=2, feedback=False, progress=lambda *_: None)
    kept = sorted(p.stem for p in (course / "results").glob("*.json"))
    assert len(kept) >= 1 and len(kept) < len(BATCH)      # the one finished (and any the other job ended)
    monkeypatch.setattr(batch, "run_jobs", run_jobs)
    said = []
    results = autograde.autograde(subs, course, jobs=2, feedback=False, progress=said.append)
    rest = len(BATCH) - len(kept)
    assert f"autograding {rest} submission(s)" in said[-1] and f"{len(kept)} unchanged" in said[-1], said
    assert _grades(results) == one_at_a_time
    # a changed submission is graded again, the others are kept
    cases.build(next(c for c in cases.MUTANTS if c.name == "noise_missing"), subs / "reference" / "ex3")   # changed
    said.clear()
    results = autograde.autograde(subs, course, jobs=2, feedback=False, progress=said.append)
    assert "autograding 1 submission(s)" in said[-1] and f"{len(BATCH) - 1} unchanged" in said[-1], said
    assert _grades(results)["reference"] == one_at_a_time["noise_missing"]


def test_a_dask_cluster_grades_the_batch(tmp_path, one_at_a_time):
    distributed = pytest.importorskip("distributed")
    course = autograde.make_course(tmp_path / "course")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        with batch.scheduler_executor(cluster.scheduler_address) as executor:
            results = autograde.autograde(_submissions(tmp_path / "subs"), course, executor=executor,
                                          feedback=False, progress=lambda *_: None)
        assert client.scheduler_info()["workers"], "the cluster had workers"
    assert _grades(results) == one_at_a_time


def test_a_scheduler_that_does_not_answer_is_a_clear_error():
    from glyph_ebm.errors import GlyphEBMError

    with pytest.raises(GlyphEBMError, match="no dask scheduler answers at tcp://127.0.0.1:9"):
        batch.scheduler_executor("tcp://127.0.0.1:9")
