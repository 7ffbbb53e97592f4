"""``glyph-course ablate``: what each technique of the chapter adds, in the spirit of Table 2 of
Du et al. (2021).

    glyph-course ablate --quick [--out runs/ablation]          # ~25-40 min on 2 CPU cores
    glyph-course ablate --estimate --quick                     # time ~20 steps of each run first
    glyph-course ablate --quick --threads 1                    # on a machine shared with other jobs

(With two torch threads on two cores that another job keeps busy, each SGLD step can become ten
times slower or worse; one thread avoids the contention.)

Runs (all from the exercise's quick JEM; each row trains from scratch with the same seed):

* a **cumulative ladder** for improved CD, in the paper's order (Table 2 adds one component per
  row): ``baseline`` -> ``augment`` (augmented chain starts, augmentation jumps every 20 steps in
  generation) -> ``multiscale`` -> ``kl`` (``L_opt``) -> ``entropy`` (``L_ent``) -> ``ema``;
* **one at a time on the baseline** for IGEBM's stabilisers and the buffer scheme, which are
  alternatives rather than steps (improved CD *removes* spectral normalisation once the KL term
  is in): ``spectral``, ``softmax_ml``, ``reservoir``.

Each run is evaluated with its trained network (for ``ema``: the averaged weights, which
Lightning's ``EMAWeightAveraging`` puts into the module when fitting ends): test accuracy, OOD
AUROC per set (energy score), and IS/FID of long-run samples from noise judged by the cached
glyph classifier (:func:`glyph_course.metrics.glyph_classifier`).

Output folder: ``settings.json``; ``<run>/result.json`` (written atomically when the run is
finished; a finished run is skipped when the command is repeated, an unfinished one resumes from
its last epoch checkpoint), ``<run>/samples.png``, ``<run>/checkpoints/last.ckpt``; and, rebuilt
after every run, ``results.csv``, ``table.md`` and ``samples_side_by_side.png``.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from glyph_ebm.datasets import spread_subset
from glyph_ebm.errors import GlyphEBMError
from ..longjob import add_threads_option, run_long_job
from glyph_ebm.files import start_afresh, write_json, write_text
from .config import AdvancedConfig, advanced_config
from ..reference import reference

OOD_SET_ORDER = ("noise", "uniform", "rotated", "flipped", "small", "digits")
# Restoration and cross-class mapping, the same for every run (restore.inpainting_report,
# compose.cross_class_rate): centre 30 % hidden on RESTORE_N held-out glyphs, the restoration is the
# average of INPAINT["chains"] chains (an estimate of the posterior mean, the least-MSE answer).
RESTORE_N = 48
INPAINT = dict(frac=0.3, fill="mean", steps=100, step_size=1.0, noise=0.05, chains=4)
CROSS_N, CROSS_STEPS = 128, 100


@dataclass(frozen=True)
class Variant:
    """One run of the ablation: ``changes`` on top of ``based_on``'s config."""

    name: str
    based_on: str | None
    changes: dict = field(default_factory=dict)
    adds: str = ""


VARIANTS: tuple[Variant, ...] = (
    Variant("baseline", None, {}, "the exercise's quick JEM (contrastive loss, persistent buffer, SGLD clip 0.03)"),
    Variant("augment", "baseline", {"augment_init": True, "augment_every": 20},
            "augmented chain starts; augmentation jump every 20 SGLD steps in generation"),
    Variant("multiscale", "augment", {"multiscale": True}, "energies at full, half and quarter resolution, summed"),
    Variant("kl", "multiscale", {"kl_weight": 1.0, "kl_steps": 1}, "KL term L_opt through the last SGLD step"),
    Variant("entropy", "kl", {"entropy_weight": 1.0}, "nearest-neighbour entropy term L_ent (100 past samples)"),
    Variant("ema", "entropy", {"ema_decay": 0.99}, "EMA of the weights (0.99) for generation and evaluation"),
    Variant("spectral", "baseline", {"spectral_norm": True}, "spectral normalisation of every layer (IGEBM)"),
    Variant("softmax_ml", "baseline", {"ml_loss": "softmax"}, "IGEBM's softmax-weighted ML loss"),
    Variant("reservoir", "baseline", {"buffer_scheme": "reservoir", "reinit_frac": 0.01},
            "improved CD's reservoir buffer (every chain added, 1 % uniform restarts)"),
)
BY_NAME = {v.name: v for v in VARIANTS}


def variant_changes(name: str) -> dict:
    """All config changes of a run, its ancestors' included (``{}`` for the baseline)."""
    if name not in BY_NAME:
        raise GlyphEBMError(f"unknown ablation run {name!r}; choose from {', '.join(BY_NAME)}")
    v = BY_NAME[name]
    return {**(variant_changes(v.based_on) if v.based_on else {}), **v.changes}


@dataclass
class AblationSettings:
    """What every run shares. :meth:`quick` is the < 1 h version for a 2-core CPU: 720 steps per
    run (about 8 epochs; the exercise's quick profile trains 880), 200 SGLD steps for generation.
    Measured per-step costs relative to the baseline: multiscale ~1.5x, the KL term +~6 % (only the
    last of 20 SGLD steps is differentiated), EMA/entropy/spectral/softmax/reservoir ~free."""

    steps: int = 880                 # training steps per run (batch 128, 32 chains x 20 SGLD steps)
    profile: str = "quick"
    data: str | None = None
    small: bool = False
    seed: int = 0
    gen_samples: int = 256           # long-run samples from noise per run (IS / FID)
    gen_steps: int = 256
    ood_n: int | None = 1000         # images per OOD set (and ID test images); None = all
    judge_steps: int = 400           # training steps of the cached glyph classifier
    only: tuple[str, ...] = tuple(BY_NAME)

    @classmethod
    def quick(cls, **changes) -> "AblationSettings":
        return cls(**{"steps": 720, "gen_samples": 256, "gen_steps": 200, **changes})

    def validate(self) -> None:
        if self.steps < 1:
            raise GlyphEBMError(f"--steps must be at least 1, got {self.steps}")
        if self.gen_samples < 2:
            raise GlyphEBMError("--gen-samples must be at least 2 (FID needs a covariance)")
        bad = [n for n in self.only if n not in BY_NAME]
        if bad:
            raise GlyphEBMError(f"unknown ablation run {bad[0]!r} in --only; choose from {', '.join(BY_NAME)}")

    def comparable(self) -> dict:
        """The settings that must agree for stored results to be reused."""
        d = dict(self.__dict__)
        d.pop("only")
        return d


def run_config(name: str, settings: AblationSettings, steps_per_epoch: int) -> AdvancedConfig:
    """The :class:`AdvancedConfig` of run ``name``: ``settings.steps`` training steps in
    ``ceil(steps / steps_per_epoch)`` epochs of (almost) equal length."""
    epochs = max(1, math.ceil(settings.steps / max(1, steps_per_epoch)))
    per_epoch = math.ceil(settings.steps / epochs)
    return advanced_config(settings.profile, data=settings.data, small=settings.small, seed=settings.seed,
                           epochs=epochs, max_steps_per_epoch=per_epoch, min_steps=0,
                           gen_steps=settings.gen_steps, gen_samples=settings.gen_samples,
                           **variant_changes(name))


# -- one run ------------------------------------------------------------------------------
class Bench:
    """Data, OOD sets and the judge shared by all runs."""

    def __init__(self, settings: AblationSettings, progress: bool = True):
        self.settings = settings
        self.dm = reference().data.GlyphDataModule(data=settings.data, small=settings.small,
                                                               seed=settings.seed, batch_size=128, progress=progress)
        self.dm.prepare_data()
        self.dm.setup()
        self.test_x, self.test_y = self.dm.tensors("test")
        n = settings.ood_n if settings.ood_n is not None else len(self.test_x)
        self.id_x = self.test_x[torch.as_tensor(spread_subset(len(self.test_x), n, settings.seed))]   # every class

    @cached_property
    def ood_sets(self) -> dict[str, torch.Tensor]:
        """``{name: (n, 1, H, W)}`` OOD images built from the test split (``ex3_ood.get_ood_sets``)."""
        return reference().ood.get_ood_sets(self.dm.splits.test_x, n=len(self.id_x),
                                                        seed=self.settings.seed)

    @cached_property
    def restore_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(RESTORE_N, 1, H, W)`` held-out glyphs and their labels, the same for every run."""
        g = torch.Generator().manual_seed(self.settings.seed + 1)
        pick = torch.randperm(len(self.test_x), generator=g)[:RESTORE_N]
        return self.test_x[pick], self.test_y[pick]

    @cached_property
    def cross_pairs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(images, source, target)``: CROSS_N held-out glyphs and a random *other* class each."""
        g = torch.Generator().manual_seed(self.settings.seed)
        pick = torch.randperm(len(self.test_x), generator=g)[:CROSS_N]
        source = self.test_y[pick]
        classes = int(self.test_y.max()) + 1
        target = (source + torch.randint(1, classes, (len(pick),), generator=g)) % classes
        return self.test_x[pick], source, target

    @cached_property
    def judge(self):
        """The cached glyph classifier of this data (trained on first use, ~1 min on a CPU)."""
        from .. import metrics

        return metrics.glyph_classifier(self.dm.splits, seed=self.settings.seed, steps=self.settings.judge_steps)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.dm.splits.train_y) // min(128, len(self.dm.splits.train_y)))


def train_run(cfg: AdvancedConfig, bench: Bench, run_dir: Path, progress: bool = True):
    """Train one :class:`AdvancedJEM` into ``run_dir`` (resuming from its last checkpoint);
    returns ``(model, trainer, seconds)``."""
    import pytorch_lightning as pl

    from glyph_ebm.training import build_trainer
    from .training import AdvancedJEM

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = bench.dm
    dm.batch_size = min(cfg.batch_size, len(dm.splits.train_y))
    dm.generator.manual_seed(cfg.seed)
    model = AdvancedJEM(cfg, num_classes=dm.num_classes, img_shape=dm.img_shape,
                        steps_per_epoch=min(bench.steps_per_epoch, cfg.max_steps_per_epoch or 10 ** 9))
    trainer = build_trainer(cfg, run_dir, enable_progress_bar=progress)
    last = run_dir / "checkpoints" / "last.ckpt"
    t0 = time.time()
    trainer.fit(model, datamodule=dm, ckpt_path=str(last) if last.exists() else None)
    return model, trainer, time.time() - t0


def evaluate_run(model, bench: Bench, settings: AblationSettings, run_dir: Path) -> dict:
    """Accuracy, OOD AUROC per set, IS/FID of long-run samples; saves ``samples.png``/``preview.pt``."""
    from glyph_ebm import plots
    from .. import metrics

    t0 = time.time()
    net = model.net.eval()
    samples = model.generate(settings.gen_samples, seed=settings.seed).cpu()
    quality = metrics.sample_quality(bench.judge, samples, bench.test_x)
    plots.image_grid(samples[:64], run_dir / "samples.png",
                     title=f"{run_dir.name}: {settings.gen_steps} SGLD steps from noise")
    torch.save(samples[:16].clone(), run_dir / "preview.pt")
    auroc = metrics.ood_auroc(net, bench.id_x, bench.ood_sets)
    return {"test_accuracy": metrics.accuracy(net, bench.test_x, bench.test_y),
            "ood_auroc": {k: round(v, 4) for k, v in auroc.items()},
            "ood_auroc_mean": round(float(np.mean(list(auroc.values()))), 4),
            "is": quality["is"], "fid": quality["fid"], **applications(net, bench),
            "eval_seconds": round(time.time() - t0, 1)}


def applications(net, bench: Bench) -> dict:
    """Inpainting factors (mean-fill MSE / restored MSE on the hidden pixels; > 1 = better than
    filling with the visible mean) under ``p(x)`` and under ``p(x | y)`` with the label told, and
    the cross-class mapping rate (share of glyphs the judge assigns to the target class after
    CROSS_STEPS SGLD steps under ``f(x, target)``; before mapping it is ``cross_class_before``)."""
    from .compose import cross_class_rate
    from .restore import inpainting_report

    x, y = bench.restore_set
    free = inpainting_report(net, x, seed=bench.settings.seed, **INPAINT)
    told = inpainting_report(net, x, y=y, seed=bench.settings.seed, **INPAINT)
    cross = cross_class_rate(net, bench.judge, *bench.cross_pairs, steps=CROSS_STEPS, seed=bench.settings.seed)
    return {"inpaint_factor": round(free["factor"], 5), "inpaint_factor_told": round(told["factor"], 5),
            "inpaint_mse": round(free["mse_restored"], 6), "inpaint_mse_mean_fill": round(free["mse_mean_fill"], 6),
            "cross_class_rate": round(cross["target_after"], 4), "cross_class_before": round(cross["target_before"], 4)}


def run_one(name: str, settings: AblationSettings, bench: Bench, out: Path, progress: bool = True) -> dict:
    """Train and evaluate run ``name`` unless ``out/name/result.json`` exists; returns its result."""
    run_dir = out / name
    done = run_dir / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = run_config(name, settings, bench.steps_per_epoch)
    resumed = (run_dir / "checkpoints" / "last.ckpt").exists()
    model, trainer, seconds = train_run(cfg, bench, run_dir, progress)
    steps = int(trainer.global_step)
    v = BY_NAME[name]
    result = {"name": name, "based_on": v.based_on, "adds": v.adds, "switches": cfg.switches(),
              "steps": steps, "train_seconds": round(seconds, 1), "resumed": resumed,   # seconds: this session
              "seconds_per_step": round(seconds / max(1, steps), 4),
              "guard_rollbacks": next((c.rollbacks for c in trainer.callbacks if hasattr(c, "rollbacks")), 0),
              **evaluate_run(model, bench, settings, run_dir), "config": cfg.to_dict()}
    write_json(done, result)
    return result


# -- summary files ------------------------------------------------------------------------
def _ood_names(results: list[dict]) -> list[str]:
    names = {k for r in results for k in r["ood_auroc"]}
    return [n for n in OOD_SET_ORDER if n in names] + sorted(names - set(OOD_SET_ORDER))


def _applications(r: dict, fmt: str) -> list[str]:
    """Inpainting factors and cross-class rate of a result ("-" for results stored without them)."""
    return [fmt.format(r[k]) if k in r else "-" for k in ("inpaint_factor", "inpaint_factor_told", "cross_class_rate")]


def write_csv(results: list[dict], path: Path) -> Path:
    sets = _ood_names(results)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["run", "based_on", "switches", "steps", "train_seconds", "seconds_per_step", "test_accuracy",
                "is", "fid", "ood_auroc_mean", *[f"auroc_{s}" for s in sets], "inpaint_factor", "inpaint_factor_told",
                "cross_class_rate", "guard_rollbacks"])
    for r in results:
        w.writerow([r["name"], r["based_on"] or "", json.dumps(r["switches"], sort_keys=True), r["steps"],
                    r["train_seconds"], r["seconds_per_step"], f"{r['test_accuracy']:.4f}", f"{r['is']:.3f}",
                    f"{r['fid']:.3f}", f"{r['ood_auroc_mean']:.4f}",
                    *[f"{r['ood_auroc'].get(s, float('nan')):.4f}" for s in sets], *_applications(r, "{:.4f}"),
                    r["guard_rollbacks"]])
    write_text(path, buf.getvalue())
    return path


def write_table(results: list[dict], settings: AblationSettings, path: Path) -> Path:
    sets = _ood_names(results)
    lines = [f"# Ablation: advanced EBM training on glyphs ({settings.steps} steps per run, seed {settings.seed})", "",
             "The first rows form a cumulative ladder (each adds one component to the row it is based on, "
             "as in Table 2 of Du et al. 2021); `spectral`, `softmax_ml` and `reservoir` each change the "
             "baseline alone. IS/FID: "
             f"{settings.gen_samples} samples after {settings.gen_steps} SGLD steps from noise, judged by the "
             "cached glyph classifier (IS up to the number of classes, lower FID = closer to the test glyphs). "
             "OOD: AUROC of the energy score, ID test glyphs = 0, OOD = 1. "
             f"Inpainting: centre {INPAINT['frac']:.0%} of {RESTORE_N} held-out glyphs hidden, restored by the "
             f"mean of {INPAINT['chains']} SGLD chains ({INPAINT['steps']} steps, visible pixels clamped); the factor "
             "is the MSE of filling the hole with the visible mean divided by the MSE of the restoration "
             "(> 1: the model restores better), under p(x) and under p(x | y) with the label told. "
             f"Cross-class: share of {CROSS_N} held-out glyphs the judge reads as a random other class after "
             f"{CROSS_STEPS} SGLD steps under that class's energy.", "",
             "| run | based on | adds | test acc | IS | FID | mean AUROC | " + " | ".join(sets)
             + " | inpaint x p(x) | inpaint x p(x given y) | cross-class | s/step |",
             "|" + "---|" * (11 + len(sets))]
    for r in results:
        lines.append(f"| {r['name']} | {r['based_on'] or '-'} | {r['adds']} | {r['test_accuracy']:.3f} | "
                     f"{r['is']:.2f} | {r['fid']:.1f} | {r['ood_auroc_mean']:.3f} | "
                     + " | ".join(f"{r['ood_auroc'].get(s, float('nan')):.3f}" for s in sets)
                     + " | " + " | ".join(_applications(r, "{:.2f}")) + f" | {r['seconds_per_step']:.3f} |")
    write_text(path, "\n".join(lines) + "\n")
    return path


def side_by_side(out: Path, names: list[str], path: Path, per_run: int = 8) -> Path | None:
    """One row of ``per_run`` samples per run, labelled with the run's name."""
    from matplotlib.figure import Figure

    from glyph_ebm.plots import tile

    rows = [(n, torch.load(out / n / "preview.pt", weights_only=True)) for n in names
            if (out / n / "preview.pt").exists()]
    if not rows:
        return None
    fig = Figure(figsize=(per_run * 0.8 + 1.5, 0.85 * len(rows) + 0.4))
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, (name, x) in zip(axes, rows):
        ax.imshow(tile(x[:per_run], nrow=per_run), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("Long-run samples from noise, one row per run", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def summarise(out: Path, settings: AblationSettings) -> list[dict]:
    """Rebuild ``results.csv``, ``table.md`` and the side-by-side figure from the finished runs."""
    names = [v.name for v in VARIANTS if (out / v.name / "result.json").exists()]
    results = [json.loads((out / n / "result.json").read_text()) for n in names]
    if results:
        write_csv(results, out / "results.csv")
        write_table(results, settings, out / "table.md")
        side_by_side(out, names, out / "samples_side_by_side.png")
    return results


def run_ablation(settings: AblationSettings, out: str | os.PathLike, progress: bool = True,
                 overwrite: bool = False) -> list[dict]:
    """Train/evaluate the runs in ``settings.only`` (skipping finished ones) and write the summary."""
    settings.validate()
    out = Path(out)
    stored = out / "settings.json"
    if stored.exists() and not overwrite:
        before = json.loads(stored.read_text())
        if before != json.loads(json.dumps(settings.comparable())):
            raise GlyphEBMError(f"{out} holds an ablation with other settings ({before}); pass --overwrite to "
                                "start afresh (the old folder is kept) or choose another --out")
    elif overwrite:
        start_afresh(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(stored, settings.comparable())
    bench = Bench(settings, progress)
    for name in [v.name for v in VARIANTS if v.name in settings.only]:
        r = run_one(name, settings, bench, out, progress)
        print(f"[ablate] {name}: acc {r['test_accuracy']:.3f}  IS {r['is']:.2f}  FID {r['fid']:.1f}  "
              f"AUROC {r['ood_auroc_mean']:.3f}  ({r['train_seconds']:.0f} s train)", flush=True)
        summarise(out, settings)
    return summarise(out, settings)


# -- cost estimate -------------------------------------------------------------------------
def estimate(settings: AblationSettings, steps: int = 20, progress: bool = False) -> list[dict]:
    """Time ``steps`` training steps (after one warm-up step) of every run and a short piece of
    its generation; extrapolate to ``settings``. Returns one dict per run (seconds)."""
    import pytorch_lightning as pl

    from .training import AdvancedJEM

    bench = Bench(settings, progress)
    x_all, y_all = bench.dm.tensors("train")
    g = torch.Generator().manual_seed(0)
    rows = []
    for name in [v.name for v in VARIANTS if v.name in settings.only]:
        cfg = run_config(name, settings, bench.steps_per_epoch).replace(warmup_epochs=0.0)   # sample every step
        pl.seed_everything(cfg.seed, verbose=False)
        model = AdvancedJEM(cfg, bench.dm.num_classes, bench.dm.img_shape, steps_per_epoch=1)
        opt = torch.optim.Adam(model.net.parameters(), lr=cfg.lr)
        batch_size = min(cfg.batch_size, len(x_all))

        def step(i: int) -> None:
            idx = torch.randint(len(x_all), (batch_size,), generator=g)
            loss = model.training_step((x_all[idx], y_all[idx]), i)
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.on_train_batch_end(None, None, i)

        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            step(0)
            t0 = time.perf_counter()
            for i in range(steps):
                step(i + 1)
            per_step = (time.perf_counter() - t0) / steps
            gen_probe = 8
            t0 = time.perf_counter()
            model.generate(settings.gen_samples, steps=gen_probe)
            gen = (time.perf_counter() - t0) / gen_probe * settings.gen_steps
        total = per_step * settings.steps + gen
        rows.append({"name": name, "seconds_per_step": per_step, "generation_seconds": gen, "run_seconds": total})
        print(f"[estimate] {name:<11} {per_step:.3f} s/step  generation ~{gen:.0f} s  run ~{total / 60:.1f} min",
              flush=True)
    print(f"[estimate] all runs: ~{sum(r['run_seconds'] for r in rows) / 60:.0f} min of training and generation "
          "(+ ~5-10 s per run for validation, accuracy, OOD and IS/FID; + 1-2 min once for the glyph classifier "
          "if it is not cached yet)")
    return rows


# -- command line --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glyph-course ablate",
                                description="train the baseline JEM and each advanced technique, evaluate "
                                            "accuracy, OOD AUROC and IS/FID; writes results.csv, table.md and figures")
    p.add_argument("--quick", action="store_true", help="the < 1 h CPU version (720 steps per run, 200 SGLD steps "
                                                        "for generation)")
    p.add_argument("--out", type=Path, default=Path("runs/ablation"), help="output folder (default runs/ablation)")
    p.add_argument("--steps", type=int, default=None, help="training steps per run")
    p.add_argument("--only", default=None, help=f"comma-separated runs (default all): {', '.join(BY_NAME)}")
    p.add_argument("--small", action="store_true", help="the small embedded glyph set (tests, first tries)")
    p.add_argument("--data", default=None, metavar="PATH", help="folder of real scans instead of the embedded set")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--gen-samples", type=int, default=None, help="samples per run for IS/FID (default 256)")
    p.add_argument("--gen-steps", type=int, default=None, help="SGLD steps from noise for those samples")
    p.add_argument("--ood-n", type=int, default=None, help="images per OOD set (default 1000)")
    p.add_argument("--judge-steps", type=int, default=None, help="training steps of the glyph classifier (default 400)")
    p.add_argument("--estimate", action="store_true", help="only time ~20 steps of each run and print the "
                                                           "estimated duration")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an --out that holds other settings")
    add_threads_option(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def settings_from_args(args) -> AblationSettings:
    changes = {k: v for k, v in {"steps": args.steps, "small": args.small or None, "data": args.data,
                                 "seed": args.seed, "gen_samples": args.gen_samples, "gen_steps": args.gen_steps,
                                 "ood_n": args.ood_n, "judge_steps": args.judge_steps}.items() if v is not None}
    if args.only:
        changes["only"] = tuple(n.strip() for n in args.only.split(",") if n.strip())
    settings = AblationSettings.quick(**changes) if args.quick else AblationSettings(**changes)
    settings.validate()
    return settings


def main(argv=None) -> int:
    """``glyph-course ablate ...``; returns the exit status (2 for a problem with the input)."""
    args = build_parser().parse_args(argv)

    def job() -> None:
        settings = settings_from_args(args)
        if args.estimate:
            estimate(settings, progress=not args.no_progress)
            return
        results = run_ablation(settings, args.out, progress=not args.no_progress, overwrite=args.overwrite)
        print(f"wrote {Path(args.out) / 'table.md'} ({len(results)} runs)")

    return run_long_job(job, args.threads, kept="finished runs")


if __name__ == "__main__":
    sys.exit(main())
