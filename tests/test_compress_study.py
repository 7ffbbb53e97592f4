"""The compression study (``glyph-course compress``): end to end on a tiny model, resumable, with
tables, figures and acceptance checks computed from the rows."""
import csv
import json

import pytest
import torch

from glyph_course.cli import main as cli_main
from glyph_course.compression import report
from glyph_course.compression.study import StudyConfig, run_study
from glyph_course.subject import load_subject
from glyph_ebm.errors import GlyphEBMError

TINY = dict(methods=("quantize", "prune", "distill"), ratios=(0.5,),
            strategies=("unstructured-global", "channels-l1-conv"), finetune_steps=3, student_widths=(1, 2),
            distill_steps=3, compare_sources_width=1, gen_samples=8, gen_steps=2, ood_n=32, latency_repeats=1)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as the trainer writes it (small data, a narrow untrained JEM, a filled buffer)."""
    from ex3_main import JEM
    from glyph_ebm.config import profile_config

    run = tmp_path_factory.mktemp("run")
    (run / "checkpoints").mkdir()
    torch.manual_seed(0)
    jem = JEM(profile_config("smoke", hidden=4), num_classes=42, img_shape=(1, 56, 56))
    jem.sampler.sample(steps=2, step_size=1.0, noise=0.01)
    torch.save({"state_dict": jem.state_dict(), "hyper_parameters": dict(jem.hparams),
                "sampler": jem.sampler.state_dict(), "sgld_step_size": 7.0}, run / "checkpoints" / "last.ckpt")
    return run


def test_load_subject_reads_model_buffer_and_settings(run_dir):
    subject = load_subject(run_dir)
    assert subject.buffer is not None and subject.buffer.shape[1:] == (1, 56, 56)
    assert subject.sgld()["step_size"] == 7.0            # the step size at the end of training
    assert subject.config["small"] is True and subject.splits.num_classes == 42
    f = subject.model(torch.zeros(2, 1, 56, 56))
    assert f.shape == (2,)


def test_study_writes_rows_table_and_figures_and_resumes(run_dir, tmp_path):
    subject = load_subject(run_dir)
    out = tmp_path / "compression"
    study = StudyConfig(**TINY)
    rows = run_study(subject, out, study, log=lambda _: None)
    names = [r["name"] for r in rows]
    assert names[0] == "baseline"
    assert {"int8-static", "int8-dynamic", "prune-unstructured-global-50", "prune-unstructured-global-50-ft",
            "prune-channels-l1-conv-50", "prune-channels-l1-conv-50-ft", "student-w1-both", "student-w2-both",
            "student-w1-train", "student-w1-buffer"} <= set(names)
    by = {r["name"]: r for r in rows}
    base = by["baseline"]
    # what the methods promise, measured on the real outputs
    assert by["int8-static"]["params_total"] == base["params_total"]
    assert base["size_bytes"] / by["int8-static"]["size_bytes"] > 1.5       # tiny model: headers weigh in
    assert by["prune-unstructured-global-50"]["params_nonzero"] <= 0.55 * base["params_total"]
    assert by["prune-channels-l1-conv-50"]["params_total"] < base["params_total"]       # channels removed
    assert by["student-w1-both"]["params_total"] < base["params_total"] / 50
    assert "fid" in by["student-w2-both"] and "fid" not in by["int8-static"]         # int8 cannot be sampled
    for f in ("results.csv", "results.md", "pruning_curves.png", "distillation.png", "samples_side_by_side.png",
              "settings.json"):
        assert (out / f).stat().st_size > 0, f
    with open(out / "results.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [t["name"] for t in table] == names
    assert float(table[1]["size_ratio"]) == pytest.approx(base["size_bytes"] / by["int8-static"]["size_bytes"], rel=1e-4)
    md = (out / "results.md").read_text()
    assert "## Pruning" in md and "## Distillation" in md and "## Acceptance checks" in md

    # continuing: nothing is built again; the rows are read back
    built = []
    again = run_study(subject, out, study, log=built.append)
    assert [r["name"] for r in again] == names and not any(line.startswith("[") for line in built)
    # other settings in the same folder: refused with advice, not mixed
    with pytest.raises(GlyphEBMError, match="--overwrite"):
        run_study(subject, out, StudyConfig(**{**TINY, "finetune_steps": 4}), log=lambda _: None)


def _row(name, method, acc=0.9, auroc=(0.8, 0.6), size=400_000, lat=10.0, params=100_000, **extra):
    r = {"name": name, "method": method, "variant": "", "ratio": extra.pop("ratio", None),
         "finetuned": extra.pop("finetuned", False), "params_total": params, "params_nonzero": params,
         "size_bytes": size, "latency_batch_ms": lat, "latency_single_ms": lat / 10, "accuracy": acc,
         "auroc_rotated": auroc[0], "auroc_small": auroc[1]}
    r.update(extra)
    return r


def test_acceptance_checks_follow_the_numbers():
    base = _row("baseline", "baseline")
    good = [base,
            _row("int8-static", "quantize", acc=None, auroc=(0.81, 0.59), size=100_000, lat=5.0),
            _row("prune-unstructured-global-50-ft", "prune", acc=0.885, auroc=(0.79, 0.59), ratio=0.5, finetuned=True),
            _row("student-w4-both", "distill", acc=None, auroc=(0.78, 0.62), params=1_000, size=4_000)]
    assert [c["ok"] for c in report.checks(good)] == [True, True, True]
    bad = [base,
           _row("int8-static", "quantize", acc=None, auroc=(0.81, 0.57), size=100_000, lat=5.0),     # AUROC -0.03
           _row("prune-unstructured-global-50-ft", "prune", acc=0.87, auroc=(0.8, 0.6), ratio=0.5, finetuned=True),
           _row("student-w4-both", "distill", acc=None, auroc=(0.76, 0.6), params=1_000, size=4_000),
           _row("student-w16-both", "distill", acc=None, auroc=(0.8, 0.6), params=20_000, size=80_000)]   # too big
    assert [c["ok"] for c in report.checks(bad)] == [False, False, False]
    slower = [base, _row("int8-static", "quantize", acc=None, size=100_000, lat=12.0)]
    assert [c["ok"] for c in report.checks(slower)] == [False]


def test_derived_ratios():
    rows = report.derive([_row("baseline", "baseline"), _row("x", "prune", size=100_000, lat=2.5, auroc=(0.7, 0.65))])
    assert rows[1]["size_ratio"] == 4.0 and rows[1]["speedup_batch"] == 4.0
    assert rows[1]["delta_auroc_rotated"] == pytest.approx(-0.1) and rows[1]["max_auroc_drop"] == pytest.approx(0.1)
    assert rows[1]["max_auroc_change"] == pytest.approx(0.1)


def test_cli_errors_are_clear(tmp_path, capsys):
    assert cli_main(["compress", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["compress", str(tmp_path), "--method", "shrink"]) == 2
    assert "unknown compression method 'shrink'" in capsys.readouterr().err
    assert cli_main(["compress", str(tmp_path), "--ratios", "0.5,1.5"]) == 2
    assert "strictly between 0 and 1" in capsys.readouterr().err
    assert cli_main(["compress", str(tmp_path)]) == 2
    assert "no trained model" in capsys.readouterr().err


def test_settings_are_recorded(run_dir, tmp_path):
    subject = load_subject(run_dir)
    run_study(subject, tmp_path / "c", StudyConfig(**{**TINY, "methods": ("quantize",)}), log=lambda _: None)
    saved = json.loads((tmp_path / "c" / "settings.json").read_text())
    assert saved["study"]["methods"] == ["quantize"] and saved["source"] == str(run_dir)


def test_bad_distillation_learning_rate_is_refused():
    with pytest.raises(GlyphEBMError, match="distill_lr must be positive"):
        StudyConfig(distill_lr=0.0).validate()
    StudyConfig().validate()
