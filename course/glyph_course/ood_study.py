"""The OOD study behind ``glyph-course ood RUN``: out-of-distribution scores side by side.

The exercise scores an image by its energy ``E(x) = -f(x)``. Likelihood-type scores have a known
weakness: simple inputs (a blank page, a shrunken glyph) can be *more* likely under the model
than the data itself (Nalisnick et al. 2019), because most of their pixels are easy. The study
compares, on every OOD set of :mod:`glyph_ebm.ood` (higher score = more out-of-distribution):

========================  =====================================================================
``energy``                ``E(x) = -f(x)``, the exercise's score
``max_softmax``           ``-max_y p(y|x)``, the classifier's confidence (Hendrycks & Gimpel 2017)
``max_logit``             ``-max_y logit_y(x)`` (Hendrycks et al. 2022)
``grad_norm``             ``||grad_x log p(x)|| = ||grad_x f(x)||``, JEM's "approximate mass":
                          data sit where the density is flat (Grathwohl et al. 2020, Table 3)
``mahalanobis``           the smallest Mahalanobis distance of the image's features (the input
                          of the network's last linear layer) to a class mean, with one
                          covariance shared by the classes, both fitted on training glyphs
                          (Lee et al. 2018)
``knn``                   the distance of the image's normalised features to the ``k``-th nearest
                          normalised feature of a training glyph (Sun et al. 2022); ``k`` keeps
                          their CIFAR-10 density, 1 % of the images of a class (:func:`knn_k`)
``knn_layers``            the same distance on features of several depths: the per-channel
                          mean and standard deviation of the last two convolutional feature maps
                          (the low-order statistics of intermediate layers, as in the layer
                          ensembles of Lee et al. 2018 and Sastry & Oore 2020) beside the
                          features of ``knn``, each part scaled to unit length
                          (:func:`layer_features`): strokes that are too thin, blurred or of
                          an unseen shape show in the early maps before the last layer
``complexity``            ``E(x) - a L(x)``: the energy corrected for the input's complexity
                          ``L(x)``, the bits a lossless image compressor (PNG) needs (Serrà et
                          al. 2020). Their score is a code length minus ``L(x)``, both in bits;
                          an energy is a code length only up to ``log Z`` and the unknown
                          temperature of the trained density, so the factor ``a`` (nats of
                          energy per bit) that makes the units agree is fitted on training
                          glyphs: the least-squares slope of ``E`` on ``L``. The score is the
                          energy an image has beyond what images of its complexity get.
========================  =====================================================================

For each (score, set): AUROC and AUPR with OOD as the positive class, and FPR at 95 % TPR: the
share of OOD images taken for in-distribution at the threshold that keeps 95 % of the test
glyphs (lower is better). Flipped and rotated glyphs can be real letters (a flipped ``d`` is a
``q``, ``o`` stays ``o``): the study counts the images of those sets made from a letter whose
transform is a letter of the set (:data:`LETTER_UNDER`) and that the judge of
:mod:`glyph_ebm.judge` indeed recognises as that letter, and reports the AUROC ceiling this share
implies if those images are indistinguishable from the data, ``1 - share / 2``.

Outputs in ``RUN/ood/`` (or ``--out``): ``results.csv``, ``results.md`` (AUROC per set and score,
the best per set in bold, the ceiling), ``roc.png`` and ``hist.png``.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from glyph_ebm.errors import GlyphEBMError, run_command
from glyph_ebm.files import atomic_write, start_afresh, write_text
from .metrics import detection_metrics

SCORES = ("energy", "max_softmax", "max_logit", "grad_norm", "mahalanobis", "knn", "knn_layers", "complexity")
DESCRIPTIONS = {
    "energy": "E(x) = -f(x)",
    "max_softmax": "-max p(y|x)",
    "max_logit": "-max logit",
    "grad_norm": "||grad f(x)||",
    "mahalanobis": "min_c Mahalanobis",
    "knn": "k-th neighbour distance",
    "knn_layers": "k-th neighbour distance, several layers",
    "complexity": "E(x) - a L_png(x)",
}
#: letters whose transform is a letter of the set (in most of the types): upside-down (a
#: vertical flip) and turned by a quarter
LETTER_UNDER = {
    "flipped": {"b": "p", "p": "b", "d": "q", "q": "d", "n": "u", "u": "n", "m": "w", "w": "m", "o": "o",
                "x": "x", "c": "c", "l": "l", "B": "B", "C": "C", "D": "D", "E": "E", "H": "H", "I": "I"},
    "rotated": {"o": "o", "x": "x", "H": "I", "I": "H"},
}


# -- the scores -----------------------------------------------------------------------------------
def png_bits(images: np.ndarray) -> np.ndarray:
    """``L(x)``: bits of each uint8 image ``(N, H, W)`` compressed losslessly as PNG (level 9)."""
    from PIL import Image

    out = np.empty(len(images), dtype=np.float64)
    for i, image in enumerate(np.asarray(images, dtype=np.uint8)):
        buffer = io.BytesIO()
        Image.fromarray(image, mode="L").save(buffer, format="PNG", optimize=True, compress_level=9)
        out[i] = 8.0 * buffer.getbuffer().nbytes
    return out


def nats_per_bit(energy_nats: np.ndarray, bits: np.ndarray) -> float:
    """The least-squares slope of ``E`` (nats) on ``L`` (bits) over in-distribution images: the
    unit conversion of the complexity correction."""
    e, b = np.asarray(energy_nats, dtype=np.float64), np.asarray(bits, dtype=np.float64)
    spread = ((b - b.mean()) ** 2).sum()
    if spread == 0:
        raise GlyphEBMError("the complexity correction needs images of different complexity")
    return float(((b - b.mean()) * (e - e.mean())).sum() / spread)


def complexity_score(energy_nats: np.ndarray, bits: np.ndarray, slope: float) -> np.ndarray:
    """``E(x) - slope * L(x)`` in nats: ``slope`` nats per bit (:func:`nats_per_bit`)."""
    return np.asarray(energy_nats, dtype=np.float64) - slope * np.asarray(bits, dtype=np.float64)


def model_scores(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> dict[str, np.ndarray]:
    """``energy``, ``max_softmax``, ``max_logit`` and ``grad_norm`` of images ``(N, 1, H, W)``."""
    model.eval()
    parts: dict[str, list] = {k: [] for k in ("energy", "max_softmax", "max_logit", "grad_norm")}
    for i in range(0, len(x), batch_size):
        batch = x[i:i + batch_size].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            f = model(batch)
            (grad,) = torch.autograd.grad(f.sum(), batch)
        with torch.no_grad():
            logits = model.get_logits(batch.detach())
        parts["energy"].append((-f).detach().double())
        parts["max_softmax"].append(-logits.softmax(1).max(1).values.double())
        parts["max_logit"].append(-logits.max(1).values.double())
        parts["grad_norm"].append(grad.flatten(1).norm(dim=1).double())
    for p in model.parameters():
        p.grad = None
    return {k: torch.cat(v).numpy() for k, v in parts.items()}


@torch.no_grad()
def penultimate_features(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The input of the network's last ``nn.Linear`` layer for images ``x``: ``(N, D)``."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise GlyphEBMError("the Mahalanobis score needs a network with a final linear layer")
    seen: list[torch.Tensor] = []
    hook = last[-1].register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach()))
    try:
        model.eval()
        for i in range(0, len(x), batch_size):
            model.get_logits(x[i:i + batch_size])
    finally:
        hook.remove()
    return torch.cat(seen).double()


#: the activation modules whose 4-d outputs :func:`layer_features` reads as feature maps
ACTIVATIONS = (nn.SiLU, nn.ReLU, nn.GELU, nn.ELU, nn.LeakyReLU, nn.Softplus, nn.Tanh, nn.Sigmoid)


@torch.no_grad()
def layer_features(model: nn.Module, x: torch.Tensor, maps: int = 2, batch_size: int = 512) -> torch.Tensor:
    """Features of several depths for images ``x``: ``(N, D)``.

    For each of the last ``maps`` convolutional feature maps ``(N, C, H, W)`` (the 4-d outputs of
    the network's activation modules, :data:`ACTIVATIONS`) the per-channel mean and standard
    deviation over the ``H x W`` positions (``2 C`` numbers), then the :func:`penultimate_features`;
    each part scaled to unit length, so that every depth weighs the same in a distance. A network
    without activation modules gives its penultimate features alone (scaled)."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise GlyphEBMError("the layered nearest-neighbour score needs a network with a final linear layer")
    acts = [m for m in model.modules() if isinstance(m, ACTIVATIONS)]
    parts: list[list[torch.Tensor]] = []
    model.eval()
    for i in range(0, len(x), batch_size):
        seen: list[torch.Tensor] = []
        head: list[torch.Tensor] = []
        hooks = [a.register_forward_hook(lambda module, inputs, output: seen.append(output)) for a in acts]
        hooks.append(last[-1].register_forward_hook(lambda module, inputs, output: head.append(inputs[0])))
        try:
            model.get_logits(x[i:i + batch_size])
        finally:
            for h in hooks:
                h.remove()
        fmaps = [o for o in seen if o.dim() == 4][-maps:] if maps > 0 else []
        stats = [torch.cat([o.mean((2, 3)), o.std((2, 3), correction=0)], 1) for o in fmaps]
        parts.append([nn.functional.normalize(t.double(), dim=1) for t in (*stats, head[-1])])
    return torch.cat([torch.cat(p, 1) for p in parts])


def image_features(model: nn.Module, images: np.ndarray, chunk: int = 4096,
                   extract=penultimate_features) -> torch.Tensor:
    """``extract(model, x)`` (:func:`penultimate_features` or :func:`layer_features`) of uint8
    images ``(N, H, W)``, converted to tensors ``chunk`` images at a time (a training split at
    once would need its float copy in memory)."""
    from glyph_ebm.datasets import to_tensor

    return torch.cat([extract(model, to_tensor(images[i:i + chunk])) for i in range(0, len(images), chunk)])


class Mahalanobis:
    """Class means and one shared covariance of features (Lee et al. 2018); :meth:`score` is the
    squared Mahalanobis distance to the nearest class mean."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, ridge: float = 1e-6):
        features, labels = features.double(), torch.as_tensor(labels).long()
        self.means = torch.stack([features[labels == c].mean(0) for c in labels.unique()])
        centred = features - self.means[torch.searchsorted(labels.unique(), labels)]
        cov = centred.T @ centred / len(features)
        cov += ridge * cov.diagonal().mean() * torch.eye(len(cov), dtype=cov.dtype)
        self.precision = torch.linalg.inv(cov)

    def score(self, features: torch.Tensor) -> np.ndarray:
        diff = features.double()[:, None, :] - self.means[None, :, :]           # (N, C, D)
        return torch.einsum("ncd,de,nce->nc", diff, self.precision, diff).min(1).values.numpy()


def knn_k(n_train: int, n_classes: int) -> int:
    """``k`` of the nearest-neighbour score for ``n_train`` training images of ``n_classes``
    classes: 1 % of a class, as ``k = 50`` for CIFAR-10's 5,000 images per class (Sun et al.
    2022), at least 1. 11,319 glyphs of 42 classes give ``k = 3``."""
    return max(1, round(0.01 * n_train / max(1, n_classes)))


class NearestNeighbours:
    """Deep nearest neighbours (Sun et al. 2022): features ``(N, D)`` of training images, scaled
    to unit length; :meth:`score` is the Euclidean distance of each scaled feature to its
    ``k``-th nearest training feature (higher = further from the data)."""

    def __init__(self, features: torch.Tensor, k: int):
        if not 1 <= k <= len(features):
            raise GlyphEBMError(f"k must lie in [1, {len(features)}] (the training features), got {k}")
        self.bank, self.k = nn.functional.normalize(features.double(), dim=1), int(k)

    def score(self, features: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        queries = nn.functional.normalize(features.double(), dim=1)
        return torch.cat([torch.cdist(queries[i:i + batch_size], self.bank).kthvalue(self.k, dim=1).values
                          for i in range(0, len(queries), batch_size)]).numpy()


def real_letter_share(judge: nn.Module, images: torch.Tensor, sources: list[str], transform: str,
                      classes: list[str]) -> float:
    """Share of transformed ``images`` (made from glyphs of the letters ``sources``) that are real
    letters of the set: the transform of their letter is a letter (:data:`LETTER_UNDER`) and the
    judge recognises that letter in them with probability >= 0.5."""
    from glyph_ebm.judge import CONFIDENT, class_probabilities

    probs = class_probabilities(judge, images)
    index = {c: i for i, c in enumerate(classes)}
    real = 0
    for p, letter in zip(probs, sources):
        partner = LETTER_UNDER[transform].get(letter)
        real += partner is not None and partner in index and bool(p[index[partner]] >= CONFIDENT)
    return real / max(1, len(sources))


# -- the study ------------------------------------------------------------------------------------
def run_study(subject, out_dir: Path, n: int = 1000, seed: int = 0, overwrite: bool = False,
              progress: bool = True) -> list[dict]:
    """Score the test glyphs and every OOD set with every score; write the table and figures."""
    from tqdm import tqdm

    from glyph_ebm.datasets import spread_subset, to_tensor
    from glyph_ebm.judge import load_judge
    from glyph_ebm.ood import OOD_SETS, make_ood_sets, source_indices

    out_dir = Path(out_dir)
    if overwrite:
        start_afresh(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    test_np, test_y = subject.splits.split("test")
    pick = spread_subset(len(test_np), n, seed)              # the splits are ordered by class
    test_np, test_y = test_np[pick], test_y[pick]
    sets = make_ood_sets(test_np, n=n, seed=seed)
    judge = load_judge(subject.splits.classes)
    model = subject.model.float().eval()
    train_x, train_y = subject.splits.split("train")
    fit_pick = spread_subset(len(train_x), max(n, 2000), seed)
    fit, fit_y = train_x[fit_pick], train_y[fit_pick]
    slope = nats_per_bit(model_scores(model, to_tensor(fit))["energy"], png_bits(fit))
    train_features = image_features(model, train_x)                   # all of them
    gauss = Mahalanobis(train_features[fit_pick], torch.as_tensor(fit_y))
    k = knn_k(len(train_x), len(subject.splits.classes))
    neighbours = NearestNeighbours(train_features, k)
    layered = NearestNeighbours(image_features(model, train_x, extract=layer_features), k)
    scored: dict[str, dict[str, np.ndarray]] = {}
    with tqdm(total=len(sets) + 1, desc="scoring", unit="set", file=sys.stderr, disable=not progress) as bar:
        for name, images in {"test": test_np, **sets}.items():
            scores = model_scores(model, to_tensor(images))
            scores["complexity"] = complexity_score(scores["energy"], png_bits(images), slope)
            features = penultimate_features(model, to_tensor(images))
            scores["mahalanobis"], scores["knn"] = gauss.score(features), neighbours.score(features)
            scores["knn_layers"] = layered.score(layer_features(model, to_tensor(images)))
            scored[name] = scores
            bar.update(1)
    ceilings = {}
    if judge is not None:
        classes = list(subject.splits.classes)
        for name in ("rotated", "flipped"):
            if name in sets:
                sources = [classes[int(test_y[i])] for i in source_indices(name, len(test_np), n, seed)]
                share = real_letter_share(judge, to_tensor(sets[name]), sources, name, classes)
                ceilings[name] = {"share": share, "ceiling": 1 - share / 2}
    rows = []
    for name in OOD_SETS:
        if name not in sets:
            continue
        for score in SCORES:
            rows.append({"set": name, "score": score, **detection_metrics(scored["test"][score], scored[name][score]),
                         "n": int(len(sets[name])), **({"real_share": ceilings[name]["share"],
                                                         "ceiling": ceilings[name]["ceiling"]}
                                                        if name in ceilings else {})})
    write_csv(rows, out_dir / "results.csv")
    write_text(out_dir / "results.md", markdown(rows, n_test=len(test_np)))
    roc_figure(scored, out_dir / "roc.png")
    histogram_figure(scored, out_dir / "hist.png")
    return rows


def write_csv(rows: list[dict], path: Path) -> Path:
    keys = ["set", "score", "auroc", "aupr", "fpr95", "n", "real_share", "ceiling"]
    with atomic_write(path) as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
    return path


def best_per_set(rows: list[dict]) -> dict[str, dict]:
    """The row with the highest AUROC of every set."""
    best: dict[str, dict] = {}
    for row in rows:
        if row["set"] not in best or row["auroc"] > best[row["set"]]["auroc"]:
            best[row["set"]] = row
    return best


def markdown(rows: list[dict], n_test: int) -> str:
    """AUROC of every set (rows) and score (columns), the best per set in bold; the ceiling of the
    sets that contain real letters; FPR at 95 % TPR of the best score."""
    sets = list(dict.fromkeys(r["set"] for r in rows))
    table = {(r["set"], r["score"]): r for r in rows}
    best = best_per_set(rows)
    head = ["set", *(f"{s} ({DESCRIPTIONS[s]})" for s in SCORES), "best FPR95", "ceiling"]
    lines = [f"OOD detection, {n_test} test glyphs against each set; AUROC (OOD = positive), higher is better.",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in sets:
        cells = []
        for score in SCORES:
            value = f"{table[(name, score)]['auroc']:.3f}"
            cells.append(f"**{value}**" if best[name]["score"] == score else value)
        ceiling = best[name].get("ceiling")
        cells += [f"{best[name]['fpr95']:.3f}", "" if ceiling is None else f"{ceiling:.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def roc_figure(scored: dict, path: Path) -> Path:
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    from glyph_ebm import plots

    names = [k for k in scored if k != "test"]
    cols = 4
    fig = Figure(figsize=(3.2 * cols, 3.0 * math.ceil(len(names) / cols)))
    for i, name in enumerate(names):
        ax = fig.add_subplot(math.ceil(len(names) / cols), cols, i + 1)
        for score in SCORES:
            labels = np.r_[np.zeros(len(scored["test"][score])), np.ones(len(scored[name][score]))]
            fpr, tpr, _ = roc_curve(labels, np.r_[scored["test"][score], scored[name][score]])
            ax.plot(fpr, tpr, lw=1.2, label=score)
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
        ax.set_title(name, fontsize=10)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return plots._save(fig, path)


def histogram_figure(scored: dict, path: Path) -> Path:
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    from glyph_ebm import plots

    cols = 4
    rows = math.ceil(len(SCORES) / cols)
    fig = Figure(figsize=(3.2 * cols, 3.0 * rows))
    for i, score in enumerate(SCORES):
        ax = fig.add_subplot(rows, cols, i + 1)
        values = np.concatenate([v[score] for v in scored.values()])
        lo, hi = np.quantile(values, [0.005, 0.995])
        bins = np.linspace(lo, hi, 50)
        for j, (name, v) in enumerate(scored.items()):        # twelve curves: tab10 would repeat colours
            ax.hist(np.clip(v[score], lo, hi), bins=bins, histtype="step", density=True,
                    color="black" if name == "test" else colormaps["tab20"](j % 20),
                    lw=2.0 if name == "test" else 1.0, label=name)
        ax.set_title(DESCRIPTIONS[score], fontsize=10)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return plots._save(fig, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="glyph-course ood",
                                description="compare OOD scores (energy, classifier confidence, gradient norm, "
                                            "feature distances, complexity-corrected energy) on every OOD set; writes RUN/ood/")
    p.add_argument("run", type=Path, help="run folder with checkpoints/last.ckpt (e.g. runs/demo) or a "
                                          "pretrained .pt file (e.g. pretrained/jem_quick.pt)")
    p.add_argument("--n", type=int, default=1000, help="test glyphs and images per OOD set (default 1000)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default RUN/ood or runs/<name>-ood)")
    p.add_argument("--code", type=Path, default=None, help="exercise folder whose CNNModel the weights fit")
    p.add_argument("--overwrite", action="store_true", help="start afresh in --out (the old folder is kept)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    def job() -> None:
        from .subject import load_subject

        if args.n < 10:
            raise GlyphEBMError(f"--n must be at least 10, got {args.n}")
        if not args.run.exists():
            raise GlyphEBMError(f"{args.run} does not exist; train a model first (make demo writes runs/demo) "
                                "or pass pretrained/jem_quick.pt")
        subject = load_subject(args.run, code_dir=args.code)
        out = args.out or (Path("runs") / f"{args.run.stem}-ood" if args.run.is_file() else args.run / "ood")
        rows = run_study(subject, out, n=args.n, overwrite=args.overwrite, progress=not args.no_progress)
        print((out / "results.md").read_text())
        print(f"table: {out / 'results.csv'}   figures: {out / 'roc.png'}, {out / 'hist.png'}")
        return None if rows else 1

    return run_command(job)


if __name__ == "__main__":
    sys.exit(main())
