"""The main job: train, generate, detect OOD, write the run folder.

``python ex3_main.py ...`` (from ``solutions/`` or a filled-in ``ex3/``) and
``glyph-ebm train ...`` both end up in :func:`run_from_command_line`, which drives the
exercise module it is given (its ``JEM``, ``run_generation``, ``run_ood_analysis``), so the
same job runs the reference and a student's code.

Run folder (``--out``): ``config.json``, ``metrics.json``, ``samples.png``,
``generation_chain.png``, ``ood_hist.png``, ``roc.png``, ``checkpoints/last.ckpt``, ``logs/``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

from .config import MODES, PROFILES, TrainConfig, field_help, profile_config
from .errors import CheckpointError, ConfigError, GlyphEBMError, run_command
from .exercise import Exercise, exercise_of, load_exercise
from .files import start_afresh, write_json

EXIT_NOT_IMPLEMENTED = 3


def build_parser(prog: str = "ex3_main.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train an EBM/JEM on glyph images, generate samples, and detect OOD inputs.",
        epilog="Any other setting: --set FIELD=VALUE (fields: see glyph_ebm/config.py). "
               "Example: --profile quick --set sgld_steps=30 --set lr=5e-4")
    p.add_argument("--profile", default=None, help=f"settings preset: {', '.join(PROFILES)} (default quick)")
    p.add_argument("--mode", default=None, help=f"what to train: {', '.join(MODES)} (default jem)")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="folder of real scans PATH/<class>/*.png (or PATH/{train,val,test}/<class>/); "
                        "default: the embedded synthetic glyph set")
    p.add_argument("--small", action="store_true", default=None, help="use the small embedded glyph set")
    p.add_argument("--out", default=None, metavar="DIR", help="run folder (default runs/<profile>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.ckpt")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an existing --out (the old folder is kept as DIR.old-<time>)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--max-time", type=float, default=None, dest="max_time_s", metavar="SECONDS",
                   help="stop training after this many seconds")
    p.add_argument("--devices", type=int, default=None, help="number of devices/processes")
    p.add_argument("--strategy", default=None, help="Lightning strategy, e.g. ddp")
    p.add_argument("--accelerator", default=None, help="cpu, gpu, auto (default auto)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")
    return p


def _parse_value(name: str, text: str):
    types = field_help()
    if name not in types:
        raise ConfigError(f"unknown setting {name!r} in --set; known: {', '.join(sorted(types))}")
    typ, default = types[name]
    typ = str(typ)
    if text.lower() in ("none", "null") and "Optional" in typ:
        return None
    try:
        if "bool" in typ:
            if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("1", "true", "yes")
        if "int" in typ and "float" not in typ:
            return int(text)
        if "float" in typ:
            return float(text)
    except ValueError:
        raise ConfigError(f"--set {name}={text}: expected a value of type {typ}") from None
    return text


def given_settings(args) -> dict:
    """The settings named on the command line, ``{field: value}`` (``--profile`` as ``profile``)."""
    given = {k: getattr(args, k) for k in ("mode", "data", "small", "seed", "epochs", "max_time_s",
                                           "devices", "strategy", "accelerator")
             if getattr(args, k) is not None}
    if args.profile is not None:
        given["profile"] = args.profile
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set expects FIELD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        given[k.strip()] = _parse_value(k.strip(), v.strip())
    return given


def config_from_args(args) -> TrainConfig:
    overrides = {k: getattr(args, k) for k in ("mode", "data", "small", "seed", "epochs",
                                               "max_time_s", "devices", "strategy", "accelerator")}
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set expects FIELD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        overrides[k.strip()] = _parse_value(k.strip(), v.strip())
    if args.epochs is not None and not any(i.startswith("min_steps=") for i in args.set):
        overrides["min_steps"] = 0      # an explicit --epochs is taken as it is
    if args.data is not None and not str(args.data).strip():
        raise ConfigError("--data was given an empty path; pass the folder that holds your class folders")
    return profile_config(args.profile or "quick", **overrides)


def _prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> Path | None:
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume:
        if not last.exists():
            raise CheckpointError(f"--resume: no checkpoint at {last}; start a new run without --resume "
                                  "or point --out at the folder of the run to continue")
        return last
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise GlyphEBMError(f"{run_dir} already holds a run; pass --resume to continue it, "
                            "--overwrite to start afresh (the old folder is kept), or another --out")
    if overwrite:
        start_afresh(run_dir)
    return None


#: options that may differ when a run is continued with --resume (how, not what, it trains)
RESUME_MAY_CHANGE = ("epochs", "max_time_s", "devices", "strategy", "accelerator", "num_workers")


def resumed_config(run_dir: Path, cfg: TrainConfig, given: dict) -> TrainConfig:
    """The configuration of the run in ``run_dir`` (its ``config.json``), for ``--resume``.

    ``given`` holds the settings named on the command line: those in :data:`RESUME_MAY_CHANGE`
    are applied; any other that differs from the saved run is refused with a clear error
    (continuing a run with another step size or data set would not be the same run).
    """
    saved = json.loads((run_dir / "config.json").read_text())
    for k in ("classes", "data_source", "split_sizes"):
        saved.pop(k, None)
    saved_cfg = TrainConfig.from_dict(saved)
    changed = {k: v for k, v in given.items() if k not in RESUME_MAY_CHANGE and getattr(saved_cfg, k) != v}
    if changed:
        what = ", ".join(f"{k} {getattr(saved_cfg, k)!r} -> {v!r}" for k, v in sorted(changed.items()))
        raise ConfigError(f"--resume continues the run in {run_dir} with the settings it was started with, "
                          f"but the command line changes them ({what}); drop those options, or start a "
                          "new run with another --out (or --overwrite) to train with other settings")
    keep = {k: getattr(cfg, k) for k in RESUME_MAY_CHANGE if k in given}
    return saved_cfg.replace(**keep)


def _check_checkpoint(ckpt: Path, num_classes: int, img_shape) -> None:
    import torch

    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
    except Exception as exc:  # corrupt or foreign file
        raise CheckpointError(f"cannot read checkpoint {ckpt} ({type(exc).__name__}); "
                              "delete it and start a new run") from None
    hp = state.get("hyper_parameters", {})
    if hp.get("num_classes") not in (None, num_classes):
        raise CheckpointError(f"checkpoint {ckpt} was trained with {hp['num_classes']} classes but the "
                              f"data has {num_classes}; use the same --data or a new --out folder")
    if hp.get("img_shape") not in (None, list(img_shape)):
        raise CheckpointError(f"checkpoint {ckpt} expects images of shape {hp['img_shape']} but the "
                              f"data has {list(img_shape)}; use the same --data or a new --out folder")


def preflight(ex3, cfg: TrainConfig, num_classes: int, img_shape) -> None:
    """Call every exercise task once on a tiny batch, in the order of the sheet, so that an
    unimplemented or broken task is reported before hours of training, not after."""
    import warnings

    import torch

    tiny = cfg.replace(sample_size=2, sgld_steps=1, buffer_size=8, warmup_epochs=0.0)
    x = torch.zeros(2, *img_shape)
    y = torch.zeros(2, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jem = ex3.JEM(tiny, num_classes=num_classes, img_shape=img_shape)
        logits = jem.cnn.get_logits(x)
        if tuple(logits.shape) != (2, num_classes):
            raise GlyphEBMError(f"Exercise 3.2a: get_logits returned shape {tuple(logits.shape)} for 2 images; "
                                f"expected (2, {num_classes})")
        for label in (None, y):
            f = jem.cnn(x, label)
            if tuple(f.shape) != (2,):
                raise GlyphEBMError(f"Exercise 3.2b: forward(x, y={'None' if label is None else 'labels'}) "
                                    f"returned shape {tuple(f.shape)} for 2 images; expected (2,)")
        jem.sampler.sample(1, cfg.step_size, cfg.noise)
        jem.px_step((x, y))
        jem.pyx_step((x, y))
        jem.training_step((x, y), 0)
        ex3.run_generation(jem.cnn, K=1, n=2, img_shape=img_shape, y=y if cfg.mode == "jem_cond" else None)
        ex3.run_ood_analysis(jem.cnn, x, {"check": x + 0.5})


def generation_labels(mode: str, train_labels, num_classes: int, n: int, seed: int = 0):
    """The class labels ``(n,)`` the long-run samples of a run are drawn for, or ``None``.

    ``"ebm"`` and ``"jem"`` train the marginal ``f(x)`` (the log-sum-exp of the logits), so
    their samples come from SGLD on it, without labels (``None``). ``"jem_cond"`` trains each class's
    ``q(x | y)`` against its own samples, each with its own normaliser: the log-sum-exp of its
    logits is then not its ``q(x)``, and its samples of ``q(x)`` are drawn ancestrally,
    ``y ~ p(y)`` with the training split's class frequencies, then ``x ~ q(x | y)`` by SGLD
    on ``f(x, y)`` (labels from :func:`glyph_ebm.datasets.class_prior_labels`, seeded)."""
    if mode != "jem_cond":
        return None
    import torch

    from .datasets import class_prior_labels

    return torch.from_numpy(class_prior_labels(train_labels, n, num_classes=num_classes, seed=seed))


def train_and_evaluate(exercise: Exercise, cfg: TrainConfig, run_dir: Path, resume_from: Path | None = None,
                       progress: bool = True) -> dict | None:
    """Train the exercise's ``JEM`` on the data of ``cfg``, then generate and run the OOD analysis.

    ``exercise``: the exercise files (reference or student), an
    :class:`~glyph_ebm.exercise.Exercise` or their ``ex3_main`` module. Returns the metrics
    dict on rank 0 (``None`` on other DDP ranks).
    """
    import pytorch_lightning as pl
    import torch

    from .datasets import spread_subset
    from .judge import load_judge, sample_quality
    from .training import build_trainer

    if not isinstance(exercise, Exercise):
        exercise = exercise_of(exercise)
    ex3, ex3_data, ex3_ood = exercise.main, exercise.data, exercise.ood

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = ex3_data.GlyphDataModule(data=cfg.data, small=cfg.small, seed=cfg.seed,
                                  batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                                  progress=progress)
    dm.prepare_data()
    dm.setup()
    if resume_from is not None:
        _check_checkpoint(resume_from, dm.num_classes, dm.img_shape)
    preflight(ex3, cfg, dm.num_classes, dm.img_shape)
    n_train = len(dm.splits.train_y)
    if n_train < cfg.batch_size:
        cfg = cfg.replace(batch_size=max(1, n_train))
        dm.batch_size = cfg.batch_size
    steps_per_epoch = n_train // cfg.batch_size
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    if cfg.min_steps and resume_from is None and cfg.epochs * steps_per_epoch < cfg.min_steps:
        cfg = cfg.replace(epochs=math.ceil(cfg.min_steps / steps_per_epoch))   # small data: more epochs
    model = ex3.JEM(cfg, num_classes=dm.num_classes, img_shape=dm.img_shape,
                    steps_per_epoch=steps_per_epoch)
    trainer = build_trainer(cfg, run_dir, enable_progress_bar=progress)
    model.sampler.reseed(cfg.seed * 1000 + trainer.global_rank)
    if trainer.is_global_zero:
        write_json(run_dir / "config.json", {**cfg.to_dict(), "classes": dm.classes,
                                             "data_source": dm.splits.source,
                                             "split_sizes": dm.splits.sizes()})
    t0 = time.time()
    trainer.fit(model, datamodule=dm, ckpt_path=str(resume_from) if resume_from else None)
    train_seconds = time.time() - t0
    if not trainer.is_global_zero:
        return None

    cnn = model.cnn.cpu().eval() if cfg.devices > 1 else model.cnn.eval()
    device = next(cnn.parameters()).device
    test_x, test_y = dm.tensors("test")
    metrics: dict = {}
    if cfg.mode != "ebm":
        with torch.no_grad():
            pred = torch.cat([cnn.get_logits(test_x[i:i + 512].to(device)).argmax(1).cpu()
                              for i in range(0, len(test_x), 512)])
        metrics["test_accuracy"] = float((pred == test_y).float().mean())
    else:
        metrics["test_accuracy"] = None
    labels = generation_labels(cfg.mode, dm.splits.train_y, dm.num_classes, cfg.gen_samples, seed=cfg.seed)
    labels = None if labels is None else labels.to(device)      # beside the chains, on a GPU too
    gen = ex3.run_generation(cnn, K=cfg.gen_steps, n=cfg.gen_samples, step_size=model.step_size,
                             noise=cfg.noise, img_shape=dm.img_shape, out_dir=run_dir, y=labels,
                             seed=cfg.seed, init_std=cfg.init_std, grad_clip=cfg.sgld_grad_clip)
    judge = load_judge(dm.classes)
    if judge is not None:         # the embedded glyph set: which letters do the samples look like?
        metrics["samples"] = {**sample_quality(judge, gen["samples"], labels), "n": int(len(gen["samples"])),
                              "steps": int(cfg.gen_steps), "conditional": labels is not None}
    ood_sets = ex3_ood.get_ood_sets(dm.splits.test_x, n=cfg.ood_n, seed=cfg.seed)
    id_images = test_x[torch.as_tensor(spread_subset(len(test_x), cfg.ood_n, cfg.seed))]   # every class
    ood = ex3.run_ood_analysis(cnn, id_images, ood_sets, out_dir=run_dir)
    prev = {}
    if (run_dir / "metrics.json").exists():
        prev = json.loads((run_dir / "metrics.json").read_text())
    metrics.update({
        "ood_auroc": {k: round(v, 4) for k, v in ood["auroc"].items()},
        "mean_energy": {k: float(v.mean()) for k, v in ood["scores"].items()},
        "train_seconds": round(train_seconds + (prev.get("train_seconds", 0.0) if resume_from else 0.0), 1),
        "epochs": int(trainer.current_epoch),
        "global_steps": int(trainer.global_step),
        "device": str(device) if cfg.devices == 1 else f"{cfg.devices}x {trainer.strategy.__class__.__name__}",
        "mode": cfg.mode,
        "profile": cfg.profile,
        "data": dm.splits.source,
        "num_classes": dm.num_classes,
        "guard_rollbacks": next((c.rollbacks for c in trainer.callbacks if hasattr(c, "rollbacks")), 0),
        "figures": [str(p) for p in gen["paths"] + ood["paths"]],
    })
    write_json(run_dir / "metrics.json", metrics)
    return metrics


def summary(metrics: dict, run_dir: Path) -> str:
    lines = [f"=== glyph-ebm run: {run_dir} ===",
             f"mode {metrics['mode']} | profile {metrics['profile']} | data {metrics['data']} "
             f"| {metrics['num_classes']} classes | device {metrics['device']}",
             f"trained {metrics['epochs']} epochs ({metrics['global_steps']} steps) in "
             f"{metrics['train_seconds']:.0f} s; divergence rollbacks: {metrics['guard_rollbacks']}"]
    if metrics.get("test_accuracy") is not None:
        lines.append(f"test accuracy      {metrics['test_accuracy']:.4f}")
    if metrics.get("samples"):
        q = metrics["samples"]
        drawn = ", labels from the class frequencies" if q.get("conditional") else ""
        lines.append(f"samples ({q['n']}, {q['steps']} SGLD steps from noise{drawn}): inception score "
                     f"{q['inception_score']:.1f}, {q['classes_covered']} of {metrics['num_classes']} classes recognised"
                     + (f", {q['label_agreement']:.0%} read as their label" if "label_agreement" in q else ""))
    lines.append("OOD AUROC (energy score, ID=0 / OOD=1):")
    for name, v in metrics["ood_auroc"].items():
        lines.append(f"  {name:<10} {v:.4f}")
    lines.append("figures:")
    for f in metrics["figures"]:
        lines.append(f"  {f}")
    lines.append(f"checkpoint: {run_dir / 'checkpoints' / 'last.ckpt'}   metrics: {run_dir / 'metrics.json'}")
    return "\n".join(lines)


def _not_implemented_message(exc: NotImplementedError) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = next((f"{Path(f.filename).name}:{f.lineno} ({f.name})" for f in reversed(tb)
                  if Path(f.filename).name.startswith("ex3_")), "")
    return f"not implemented yet: {exc} [{where}]" if where else f"not implemented yet: {exc}"


def run_from_command_line(ex3, argv=None, prog: str = "ex3_main.py") -> int:
    """Parse arguments, run :func:`train_and_evaluate`, print the summary. Returns the exit code.

    ``ex3``: the exercise's ``ex3_main`` module (``python ex3_main.py`` passes itself), an
    :class:`~glyph_ebm.exercise.Exercise`, or the folder of the exercise files."""
    args = build_parser(prog).parse_args(argv)

    def job() -> None:
        try:
            exercise = ex3 if isinstance(ex3, Exercise) else \
                load_exercise(ex3) if isinstance(ex3, (str, os.PathLike)) else exercise_of(ex3)
            cfg = config_from_args(args)
            run_dir = Path(args.out or f"runs/{cfg.profile}").resolve()
            is_worker = os.environ.get("LOCAL_RANK", "0") != "0"   # DDP child processes re-run the script
            if args.resume and (run_dir / "config.json").exists():
                cfg = resumed_config(run_dir, cfg, given_settings(args))
            resume_from = (run_dir / "checkpoints" / "last.ckpt" if args.resume else None) if is_worker \
                else _prepare_run_dir(run_dir, args.resume, args.overwrite)
            metrics = train_and_evaluate(exercise, cfg, run_dir, resume_from, progress=not args.no_progress)
        except NotImplementedError as exc:
            print(f"error: {_not_implemented_message(exc)}", file=sys.stderr)
            return EXIT_NOT_IMPLEMENTED
        if metrics is not None:
            print(summary(metrics, run_dir))
        return 0

    return run_command(job, interrupted="continue with --resume (the last finished epoch is in "
                                        "checkpoints/last.ckpt)")
