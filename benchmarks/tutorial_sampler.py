"""The sampler of the widely used EBM tutorial, as a baseline for our ``MCMCSampler``.

A re-implementation (written for this project from the tutorial's description) of the
``Sampler`` of the UvA Deep Learning tutorial 8, "Deep Energy-Based Generative Models"
(Phillip Lippe), kept faithful to the original so that the comparison in
``benchmarks/sampler.py`` is fair:

* the replay buffer is a Python list of single-image tensors ``(1, C, H, W)``, initialised
  with ``sample_size`` uniform images in [-1, 1]; new chains are put in front and the list is
  cut to ``max_len`` (8192);
* per call, ``n_new ~ Binomial(sample_size, 0.05)`` chains start from uniform noise
  (``np.random.binomial``), the others are drawn with replacement from the buffer
  (``random.choices``);
* SGLD works in place on the input tensor: a noise buffer drawn once with ``torch.randn``
  and refilled with ``normal_(0, 0.005)`` every step, the energy ``E = -model(x)`` is
  back-propagated with ``.backward()``, its gradient clamped to +-0.03 and subtracted with
  step size ``step_size``; the model's parameters are frozen during sampling.

The model convention is the tutorial's (and ours): ``model(x)`` returns ``f(x) = -E(x)``.
Randomness comes from the *global* generators (torch, numpy, python ``random``), as in the
tutorial.
"""
from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn as nn


class TutorialSampler:
    """Replay-buffer SGLD sampler of the tutorial.

    Args:
        model: ``nn.Module`` with ``model(x) -> f(x) = -E(x)`` of shape ``(B,)``.
        img_shape: ``(C, H, W)`` of one image.
        sample_size: chains per call of :meth:`sample_new_exmps`.
        max_len: capacity of the list of stored examples.
    """

    # hard-coded in the tutorial's ``generate_samples``; class attributes here so that the
    # identity test can show that a different value breaks the agreement with our sampler
    noise_std = 0.005
    grad_clip = 0.03
    reinit_prob = 0.05

    def __init__(self, model: nn.Module, img_shape, sample_size: int, max_len: int = 8192):
        self.model = model
        self.img_shape = tuple(img_shape)
        self.sample_size = int(sample_size)
        self.max_len = int(max_len)
        self.examples = [torch.rand((1, *self.img_shape)) * 2 - 1 for _ in range(self.sample_size)]

    def _device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def sample_new_exmps(self, steps: int = 60, step_size: float = 10) -> torch.Tensor:
        """One batch of ``sample_size`` samples: 5 % fresh uniform noise + buffer starts,
        ``steps`` SGLD steps, then the results go to the front of the buffer."""
        n_new = int(np.random.binomial(self.sample_size, self.reinit_prob))
        fresh = torch.rand((n_new, *self.img_shape)) * 2 - 1
        old = torch.cat(random.choices(self.examples, k=self.sample_size - n_new), dim=0)
        inp_imgs = torch.cat([fresh, old], dim=0).detach().to(self._device())
        inp_imgs = self.generate_samples(self.model, inp_imgs, steps=steps, step_size=step_size)
        self.examples = list(inp_imgs.to(torch.device("cpu")).chunk(self.sample_size, dim=0)) + self.examples
        self.examples = self.examples[:self.max_len]
        return inp_imgs

    @classmethod
    def generate_samples(cls, model: nn.Module, inp_imgs: torch.Tensor, steps: int = 60,
                         step_size: float = 10, return_img_per_step: bool = False) -> torch.Tensor:
        """``steps`` SGLD steps on ``inp_imgs`` **in place** (as in the tutorial).

        Returns ``inp_imgs`` (which now requires grad), or the stacked images after every step
        when ``return_img_per_step``.
        """
        # freeze the parameters: only the input gradient is wanted
        is_training = model.training
        model.eval()
        for p in model.parameters():
            p.requires_grad = False
        inp_imgs.requires_grad = True

        had_gradients_enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(True)

        # one noise buffer, refilled every step (this first draw is overwritten before use,
        # but it advances the global generator)
        noise = torch.randn(inp_imgs.shape, device=inp_imgs.device)
        imgs_per_step = []
        for _ in range(steps):
            # 1. perturb
            noise.normal_(0, cls.noise_std)
            inp_imgs.data.add_(noise.data)
            inp_imgs.data.clamp_(min=-1.0, max=1.0)
            # 2. gradient of the energy E = -f with respect to the input
            out_imgs = -model(inp_imgs)
            out_imgs.sum().backward()
            inp_imgs.grad.data.clamp_(-cls.grad_clip, cls.grad_clip)
            # 3. step down the energy, reset the gradient, clamp to the pixel range
            inp_imgs.data.add_(-step_size * inp_imgs.grad.data)
            inp_imgs.grad.detach_()
            inp_imgs.grad.zero_()
            inp_imgs.data.clamp_(min=-1.0, max=1.0)
            if return_img_per_step:
                imgs_per_step.append(inp_imgs.clone().detach())

        for p in model.parameters():
            p.requires_grad = True
        model.train(is_training)
        torch.set_grad_enabled(had_gradients_enabled)
        if return_img_per_step:
            return torch.stack(imgs_per_step, dim=0)
        return inp_imgs


class TutorialCNN(nn.Module):
    """The tutorial's energy network (for 28x28 inputs): four strided convolutions with
    Swish (= SiLU) activations, 16-32-64-64 channels, then a two-layer head; returns
    ``f(x) = -E(x)`` of shape ``(B,)``. Optional second model of ``benchmarks/sampler.py``."""

    def __init__(self, hidden_features: int = 32, out_dim: int = 1):
        super().__init__()
        c1, c2, c3 = hidden_features // 2, hidden_features, hidden_features * 2
        self.cnn_layers = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=5, stride=2, padding=4),   # 28 -> 16
            nn.SiLU(),
            nn.Conv2d(c1, c2, kernel_size=3, stride=2, padding=1),  # 16 -> 8
            nn.SiLU(),
            nn.Conv2d(c2, c3, kernel_size=3, stride=2, padding=1),  # 8 -> 4
            nn.SiLU(),
            nn.Conv2d(c3, c3, kernel_size=3, stride=2, padding=1),  # 4 -> 2
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(c3 * 4, c3),
            nn.SiLU(),
            nn.Linear(c3, out_dim),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.cnn_layers(x).squeeze(dim=-1)
