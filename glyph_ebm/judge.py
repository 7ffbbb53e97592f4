"""The judge of generated glyphs: a small CNN classifier of the embedded glyph set.

A run's samples are judged by a network that has nothing to do with the energy model: which
letters do they look like, how sure is the judge, and how many different letters appear?

* :func:`inception_score` - ``exp(E_x KL(p(y|x) || p(y)))``: 1 when every sample is an
  undecided blur, 42 when every sample is one letter with certainty and all letters are
  equally frequent (Salimans et al. 2016, with our judge instead of an Inception network);
* :func:`sample_quality` - the inception score and ``classes_covered``: how many of the 42
  classes the judge recognises with confidence (probability >= 0.5) among the samples, and for
  class-conditional samples how often the judge reads the letter they were drawn for.

The judge's weights ship with the library (``judge.pt``, float16, made by the course tooling's
``glyph-course judge`` from the embedded set with seed 0); nothing is trained during a run, and
the judge only speaks for the embedded glyph classes (:func:`load_judge` returns ``None`` for
other data).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

WEIGHTS = Path(__file__).resolve().parent / "judge.pt"
FORMAT = "glyph-ebm-judge-1"
CONFIDENT = 0.5          # probability above which a sample counts as recognised


class GlyphClassifier(nn.Module):
    """A small CNN classifier of 56x56 glyphs, deliberately unlike the energy networks it judges.
    ``features`` gives the 128-d penultimate activations (for FID), ``forward`` the logits."""

    def __init__(self, num_classes: int = 42):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.body = nn.Sequential(block(1, 24), block(24, 48), block(48, 96), nn.Flatten(),
                                  nn.Linear(96 * 7 * 7, 128), nn.ReLU())
        self.fc = nn.Linear(128, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def read_weights(path: Path = WEIGHTS) -> dict:
    """The judge file: ``{"format", "state_dict" (float16), "classes", "data_key", "seed",
    "steps", "test_accuracy"}``."""
    return torch.load(path, map_location="cpu", weights_only=True)


def load_judge(classes=None, path: Path = WEIGHTS) -> GlyphClassifier | None:
    """The shipped judge in eval mode, or ``None`` when it cannot judge these ``classes`` (a
    folder of real scans with other letters) or its file is missing."""
    if not Path(path).exists():
        return None
    blob = read_weights(path)
    if blob.get("format") != FORMAT or (classes is not None and list(classes) != list(blob["classes"])):
        return None
    judge = GlyphClassifier(len(blob["classes"]))
    judge.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    return judge.eval()


def inception_score(probs) -> float:
    """``exp(E_x KL(p(y|x) || p(y)))`` for class probabilities ``(N, C)``."""
    p = torch.as_tensor(probs, dtype=torch.float64).clamp_min(1e-12)
    p = p / p.sum(1, keepdim=True)
    marginal = p.mean(0, keepdim=True)
    return float(torch.exp((p * (p.log() - marginal.log())).sum(1).mean()))


@torch.no_grad()
def class_probabilities(judge: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """``p(y | x)`` of the judge for images ``(N, 1, 56, 56)`` in [-1, 1], shape ``(N, C)``."""
    judge.eval()
    return torch.cat([judge(images[i:i + batch_size].float().cpu()).softmax(1)
                      for i in range(0, len(images), batch_size)])


def sample_quality(judge: nn.Module, samples: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
    """``{"inception_score", "classes_covered", "recognised"}`` of ``samples``: the inception
    score, how many classes the judge recognises with probability >= 0.5 at least once, and the
    share of samples it recognises. With the labels ``(N,)`` the samples were drawn for
    (class-conditional sampling), also ``"label_agreement"``: the share the judge reads as the
    letter they were drawn for."""
    probs = class_probabilities(judge, samples)
    top, label = probs.max(1)
    sure = top >= CONFIDENT
    out = {"inception_score": round(inception_score(probs), 3),
           "classes_covered": int(label[sure].unique().numel()),
           "recognised": round(float(sure.float().mean()), 3)}
    if labels is not None:
        out["label_agreement"] = round(float((label == torch.as_tensor(labels).cpu()).float().mean()), 3)
    return out
