"""The compression study behind ``glyph-course compress``: every method on one trained model,
judged by one evaluation kit, written to ``<run>/compression/``.

    glyph-course compress runs/demo --method all --quick

Steps (each evaluated model is one row of ``results.csv``):

* ``baseline``  - the float32 model as trained;
* ``quantize``  - static int8 (calibrated on training images) and dynamic int8, for scoring
  only (int8 has no input gradients, so no SGLD samples: sample with the float model);
* ``prune``     - each strategy (unstructured or channel pruning, global or conv-only) at each
  ratio, without and with a short fine-tune (cross-entropy + an energy anchor to the unpruned
  model, see :mod:`.finetune`);
* ``distill``   - a family of students trained to match the teacher's energies by MSE, plus a
  comparison of the distillation sources (training images, replay buffer, both).

Each row holds size (file bytes, parameters), CPU scoring latency, test accuracy, OOD AUROC per
set and, for models that can be sampled, IS/FID of long-run SGLD samples judged by our glyph
classifier. Finished rows are stored one file each in ``compression/rows/``, so an interrupted
study continues where it stopped when run again.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from .. import metrics
from glyph_ebm.errors import GlyphEBMError
from glyph_ebm.files import start_afresh, write_json
from ..subject import Subject
from .distill import StudentEnergy, distill
from .finetune import finetune
from .prune import compact_size_bytes, prune_channels, prune_unstructured
from .quantize import quantize_dynamic, quantize_static

METHODS = ("quantize", "prune", "distill")
STRATEGIES: dict[str, tuple[str, str, int]] = {
    # name: (kind, scope, norm)
    "unstructured-global": ("unstructured", "global", 1),
    "unstructured-conv": ("unstructured", "conv", 1),
    "channels-l1-global": ("channels", "global", 1),
    "channels-l1-conv": ("channels", "conv", 1),
    "channels-l2-global": ("channels", "global", 2),
    "channels-l2-conv": ("channels", "conv", 2),
}


@dataclass
class StudyConfig:
    """What the study runs. :meth:`quick` is the < 20 min version for a 2-core CPU."""

    methods: tuple[str, ...] = METHODS
    ratios: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    strategies: tuple[str, ...] = tuple(STRATEGIES)
    finetune_steps: int = 300          # steps of batch 128 (the report used 7 epochs)
    finetune_lr: float = 5e-4
    anchor_weight: float = 1.0         # energy anchor of the fine-tune (0 = cross-entropy only)
    student_widths: tuple[int, ...] = (1, 2, 4, 6, 8, 16)
    student_pool: int = 2
    distill_steps: int = 12000
    distill_source: str = "both"       # source of the student family
    distill_copies: int = 3            # augmented copies per image in the transfer set (distill.transfer_set)
    distill_batch: int = 256
    distill_lr: float = 1e-2           # peak of the cosine schedule (3e-3 needed 4x the steps for the same fit)
    compare_sources_width: int = 8     # width at which train / buffer / both are compared (0 = skip)
    gen_samples: int = 256             # SGLD samples per model for IS / FID
    gen_steps: int | None = None       # SGLD steps from noise (None = the run's gen_steps)
    ood_n: int = 1000                  # images per OOD set
    ood_sets: tuple[str, ...] | None = None   # the OOD sets scored (None = every set of glyph_ebm.ood)
    latency_repeats: int = 20
    seed: int = 0

    @classmethod
    def quick(cls, **changes) -> "StudyConfig":
        values = dict(ratios=(0.1, 0.3, 0.5, 0.7, 0.9),
                      strategies=("unstructured-global", "unstructured-conv", "channels-l1-global",
                                  "channels-l2-conv"),
                      finetune_steps=150, student_widths=(2, 4, 8, 16), distill_steps=3000,
                      gen_samples=128, gen_steps=128, latency_repeats=7)
        values.update(changes)
        return cls(**values)

    def validate(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise GlyphEBMError(f"unknown compression method {bad[0]!r}; choose from {', '.join(METHODS)} or all")
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad:
            raise GlyphEBMError(f"unknown pruning strategy {bad[0]!r}; choose from {', '.join(STRATEGIES)}")
        if any(not 0.0 < r < 1.0 for r in self.ratios):
            raise GlyphEBMError(f"pruning ratios must lie strictly between 0 and 1, got {list(self.ratios)}")
        if not self.distill_lr > 0:
            raise GlyphEBMError(f"distill_lr must be positive, got {self.distill_lr}")
        if self.gen_samples < 2:
            raise GlyphEBMError("gen_samples must be at least 2 (FID needs a covariance)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# -- the evaluation bench ---------------------------------------------------------------------------
class Bench:
    """Data, judge and sampler shared by every row: one place where "evaluated" is defined."""

    def __init__(self, subject: Subject, study: StudyConfig, sample_fn: Callable | None = None):
        from glyph_ebm.datasets import to_tensor
        from glyph_ebm.ood import OOD_SETS, make_ood_sets

        self.subject, self.study = subject, study
        splits = subject.splits
        train_np, train_y = splits.split("train")
        test_np, test_y = splits.split("test")
        self.train_x, self.train_y = to_tensor(train_np), torch.as_tensor(train_y).long()
        self.test_x, self.test_y = to_tensor(test_np), torch.as_tensor(test_y).long()
        self.ood = {k: to_tensor(v) for k, v in make_ood_sets(test_np, n=study.ood_n, seed=study.seed,
                                                                       names=study.ood_sets or OOD_SETS).items()}
        self.calibration = self.train_x[torch.randperm(len(self.train_x), generator=torch.Generator().manual_seed(0))[:1024]]
        self.latency_batch = self.test_x[:256]
        self.classifier = metrics.glyph_classifier(splits, seed=study.seed)
        self.sample_fn = sample_fn or self._reference_sampler()
        self.transfer_sets: dict = {}      # distillation's transfer sets, filled by distill() on first use

    def _reference_sampler(self) -> Callable[[nn.Module], torch.Tensor]:
        """Long-run SGLD from noise with the reference exercise's ``run_generation``."""
        from ..reference import reference

        ex3 = reference().main
        settings = self.subject.sgld()
        steps = self.study.gen_steps or int(self.subject.config.get("gen_steps", 256))
        shape = tuple(self.test_x.shape[1:])

        def sample(model: nn.Module) -> torch.Tensor:
            return ex3.run_generation(model, K=steps, n=self.study.gen_samples, img_shape=shape,
                                      seed=self.study.seed, **settings)["samples"]
        return sample

    def evaluate(self, model: nn.Module, sample: bool = True, sparse: bool = False) -> tuple[dict, torch.Tensor | None]:
        """One row of measurements for ``model`` and its SGLD samples (None if not sampled)."""
        model.eval()
        nonzero, total = metrics.parameter_count(model)
        size = compact_size_bytes(model) if sparse else metrics.model_size_bytes(model)
        with torch.no_grad():
            lat = metrics.scoring_latency(model, self.latency_batch, repeats=self.study.latency_repeats,
                                          reference=self.subject.model)
        row = {"params_total": total, "params_nonzero": nonzero, "size_bytes": size,
               "latency_batch_ms": 1e3 * lat["batch_s"], "latency_single_ms": 1e3 * lat["single_s"],
               "baseline_latency_batch_ms": 1e3 * lat["reference_batch_s"],
               "baseline_latency_single_ms": 1e3 * lat["reference_single_s"],
               "accuracy": metrics.accuracy(model, self.test_x, self.test_y) if hasattr(model, "get_logits") else None}
        row.update({f"auroc_{k}": v for k, v in metrics.ood_auroc(model, self.test_x, self.ood).items()})
        samples = None
        if sample:
            samples = self.sample_fn(model).detach().cpu()
            row.update(metrics.sample_quality(self.classifier, samples, self.test_x))
        return row, samples


# -- the study ----------------------------------------------------------------------------------------
@dataclass
class Job:
    name: str
    method: str
    variant: str
    ratio: float | None = None
    finetuned: bool = False
    sample: bool = True
    sparse: bool = False
    build: Callable[[], nn.Module] | None = field(default=None, repr=False)


def plan(subject: Subject, study: StudyConfig, bench_ref: list) -> list[Job]:
    """The ordered list of models to evaluate (``bench_ref[0]`` is the bench, filled lazily)."""
    teacher = subject.model
    jobs = [Job("baseline", "baseline", "float32", build=lambda: teacher)]

    if "quantize" in study.methods:
        jobs.append(Job("int8-static", "quantize", "static", sample=False,
                        build=lambda: quantize_static(teacher, bench_ref[0].calibration)))
        jobs.append(Job("int8-dynamic", "quantize", "dynamic", sample=False,
                        build=lambda: quantize_dynamic(teacher)))

    if "prune" in study.methods:
        for strategy in study.strategies:
            kind, scope, norm = STRATEGIES[strategy]
            for ratio in study.ratios:
                def pruned(kind=kind, scope=scope, norm=norm, ratio=ratio):
                    if kind == "unstructured":
                        return prune_unstructured(teacher, ratio, scope=scope)
                    return prune_channels(teacher, ratio, norm=norm, scope=scope)

                def tuned(pruned=pruned):
                    model, b = pruned(), bench_ref[0]
                    finetune(model, b.train_x, b.train_y, steps=study.finetune_steps, lr=study.finetune_lr,
                             seed=study.seed, teacher=teacher, anchor_weight=study.anchor_weight,
                             anchor_images=subject.buffer)
                    return model
                tag = f"{strategy}-{round(100 * ratio):02d}"
                sparse = kind == "unstructured"
                jobs.append(Job(f"prune-{tag}", "prune", strategy, ratio, False, sparse=sparse, build=pruned))
                if study.finetune_steps > 0:
                    jobs.append(Job(f"prune-{tag}-ft", "prune", strategy, ratio, True, sparse=sparse, build=tuned))

    if "distill" in study.methods:
        def student(width: int, source: str):
            def build():
                torch.manual_seed(study.seed)
                s = StudentEnergy(width=width, pool=study.student_pool)
                b = bench_ref[0]
                distill(s, teacher, b.train_x, subject.buffer, source=source, steps=study.distill_steps,
                        batch_size=study.distill_batch, lr=study.distill_lr, seed=study.seed, augment=study.distill_copies,
                        transfer=b.transfer_sets)
                return s
            return build
        family_source = study.distill_source if subject.buffer is not None else "train"
        for w in study.student_widths:
            jobs.append(Job(f"student-w{w}-{family_source}", "distill", f"w{w}", finetuned=False,
                            build=student(w, family_source)))
        if study.compare_sources_width and subject.buffer is not None:
            for source in ("train", "buffer", "both"):
                if source == family_source and study.compare_sources_width in study.student_widths:
                    continue
                jobs.append(Job(f"student-w{study.compare_sources_width}-{source}", "distill",
                                f"w{study.compare_sources_width}", sample=False,
                                build=student(study.compare_sources_width, source)))
    return jobs


def _to_uint8(samples: torch.Tensor) -> np.ndarray:
    return ((samples[:, 0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def run_study(subject: Subject, out_dir: str | os.PathLike, study: StudyConfig | None = None,
              overwrite: bool = False, log: Callable[[str], None] = print,
              sample_fn: Callable | None = None) -> list[dict]:
    """Run (or continue) the study into ``out_dir``; returns the rows, baseline first."""
    from . import report

    study = study or StudyConfig()
    study.validate()
    out = Path(out_dir)
    rows_dir = out / "rows"
    settings = {"study": study.to_dict(), "source": subject.source}
    settings_path = out / "settings.json"
    if overwrite:
        start_afresh(out)
    if settings_path.exists() and json.loads(settings_path.read_text())["study"] != json.loads(json.dumps(study.to_dict())):
        raise GlyphEBMError(f"{out} holds a study with other settings; pass --overwrite to start it afresh "
                            "(the old folder is kept) or --out for another folder")
    rows_dir.mkdir(parents=True, exist_ok=True)
    write_json(settings_path, settings)

    bench_ref: list = []
    jobs = plan(subject, study, bench_ref)
    rows = []
    t_start = time.time()
    for i, job in enumerate(jobs, 1):
        row_path = rows_dir / f"{job.name}.json"
        if row_path.exists():
            rows.append(json.loads(row_path.read_text()))
            continue
        if not bench_ref:
            log("preparing data, OOD sets and the judge classifier ...")
            bench_ref.append(Bench(subject, study, sample_fn=sample_fn))
        bench = bench_ref[0]
        t0 = time.time()
        model = job.build()
        build_s = time.time() - t0
        row, samples = bench.evaluate(model, sample=job.sample, sparse=job.sparse)
        if job.method == "quantize":   # packed int8 weights are not nn.Parameters: same count as float
            row["params_nonzero"], row["params_total"] = metrics.parameter_count(subject.model)
        row = {"name": job.name, "method": job.method, "variant": job.variant, "ratio": job.ratio,
               "finetuned": job.finetuned, **row, "build_s": build_s, "eval_s": time.time() - t0 - build_s}
        if samples is not None:
            np.savez_compressed(report.samples_path(out, job.name), samples=_to_uint8(samples[:32]))
        write_json(row_path, row, indent=1)
        rows.append(row)
        log(f"[{i}/{len(jobs)}] {job.name}: " + report.one_line(row) + f"  ({time.time() - t0:.0f} s)")
    report.write_all(rows, out, study)
    log(f"compression study done in {time.time() - t_start:.0f} s: {out / 'results.md'}")
    return rows
