"""What the graded notebook uses to run the checks of one task against a student's files.

The notebook's first cell calls :func:`setup`, which returns a :class:`Student` for the folder
that holds the notebook (the student's ``ex3/``). Every test cell then runs inside
``with task("3.2a"):`` so that whatever goes wrong becomes one :class:`GradingFailure` with a
message the student can act on:

* a check that does not hold (``check``/``check_close``): what was expected and what was found;
* ``NotImplementedError`` from the template: "not implemented yet";
* any other exception from the student's code: its type, message and the student's own lines
  (never the grader's source, so hidden tests stay hidden in the feedback);
* ``sys.exit()``, running out of memory, or the per-cell time limit (nbgrader's
  ``Execute.timeout`` interrupts the kernel): said in plain words.

Student modules are imported one at a time. When one of them cannot be imported (syntax error,
crash at import, missing file), a placeholder takes its place, so ``ex3_main`` still imports and
only the tasks that really use the broken file lose points.
"""
from __future__ import annotations

import os
import random
import re
import types
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..exercise import MODULES, Exercise, ExerciseImportError, first_line, frames_in

#: extra memory (GiB) a graded kernel may allocate beyond what it uses after setup
MEMORY_GIB = float(os.environ.get("GLYPH_EBM_GRADING_MEMORY_GIB", "3"))


class GradingFailure(AssertionError):
    """A task's check failed; renders as one short message (no grader source lines)."""

    def __init__(self, task_id: str, message: str, details=()):
        super().__init__(f"Exercise {task_id}: {message}")
        self.task_id, self.message, self.details = task_id, message, list(details)

    def _render_traceback_(self):   # used by IPython instead of a full traceback
        return [f"\x1b[0;31mGradingFailure\x1b[0m: Exercise {self.task_id}: {self.message}", *self.details]


class Mismatch(AssertionError):
    """Raised by :func:`check` helpers; :func:`task` turns it into a :class:`GradingFailure`."""


#: a student file could not be imported; its message says which and why
StudentImportError = ExerciseImportError


# -- checks -----------------------------------------------------------------------------------
def check(condition, message: str) -> None:
    """Fail the current task with ``message`` unless ``condition`` holds."""
    if not bool(condition):
        raise Mismatch(message)


def describe(value) -> str:
    """A short, readable description of a value for failure messages."""
    if isinstance(value, torch.Tensor):
        value = value.detach().float().cpu()
        if value.numel() <= 6:
            return "[" + ", ".join(f"{v:.4g}" for v in value.flatten().tolist()) + "]" \
                if value.dim() else f"{value.item():.6g}"
        head = ", ".join(f"{v:.4g}" for v in value.flatten()[:4].tolist())
        return f"a tensor of shape {tuple(value.shape)} starting [{head}, ...]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


def as_tensor(value, what: str) -> torch.Tensor:
    """``value`` as a float tensor, or a failure saying what type was found instead."""
    if isinstance(value, np.ndarray) or isinstance(value, (float, int)):
        value = torch.as_tensor(value)
    check(isinstance(value, torch.Tensor), f"{what} should be a torch.Tensor, found {type(value).__name__}")
    return value.detach().float().cpu()


def check_shape(value, shape, what: str) -> torch.Tensor:
    value = as_tensor(value, what)
    check(tuple(value.shape) == tuple(shape), f"{what}: expected shape {tuple(shape)}, found {tuple(value.shape)}")
    return value


def check_close(found, expected, what: str, atol: float = 1e-5, rtol: float = 1e-4, hint: str = "") -> None:
    """Fail unless ``found`` equals ``expected`` elementwise within the tolerances."""
    expected = as_tensor(expected, "expected value")
    found = check_shape(found, expected.shape, what)
    check(torch.isfinite(found).all(), f"{what}: found non-finite values (nan or inf): {describe(found)}. {hint}".strip())
    if not torch.allclose(found, expected, atol=atol, rtol=rtol):
        diff = (found - expected).abs().max().item()
        raise Mismatch(f"{what}: expected {describe(expected)}, found {describe(found)} "
                       f"(largest difference {diff:.3g}). {hint}".strip())


def no_parameter_gradients(model: nn.Module) -> bool:
    """True when no parameter carries a non-zero ``.grad`` and all still require gradients."""
    return all(p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))
               for p in model.parameters())


def buffer_images(sampler, img_shape) -> torch.Tensor:
    """The replay buffer of a sampler as one ``(N, *img_shape)`` tensor, whatever its type
    (tensor, list or deque of images or of ``(1, C, H, W)`` chunks)."""
    check(hasattr(sampler, "buffer"), "the sampler has no attribute `buffer`: keep the replay buffer "
          "in self.buffer (a tensor, list or deque of images)")
    items = sampler.buffer
    if isinstance(items, torch.Tensor):
        return items.detach().float().cpu().reshape(-1, *img_shape).clone()
    items = list(items)
    if not items:
        return torch.zeros((0, *img_shape))
    return torch.cat([torch.as_tensor(b).detach().float().cpu().reshape(-1, *img_shape) for b in items])


def set_buffer_images(sampler, images: torch.Tensor) -> None:
    """Replace the replay buffer's images by ``images`` (``(N, *img_shape)``, N = its length) in
    place, keeping its type (tensor, list or deque) and the shape of each stored item."""
    items = sampler.buffer
    if isinstance(items, torch.Tensor):
        check(len(items) == len(images), f"the buffer holds {len(items)} images, expected {len(images)}")
        with torch.no_grad():
            items.copy_(images.reshape(items.shape).to(items.dtype))
        return
    stored = list(items)
    check(len(stored) == len(images), f"the buffer holds {len(stored)} images, expected {len(images)}")
    new = [images[i].reshape(torch.as_tensor(old).shape).to(torch.as_tensor(old).dtype).clone()
           for i, old in enumerate(stored)]
    for i, item in enumerate(new):
        items[i] = item


@contextmanager
def stand_in(module, **attributes):
    """Temporarily replace ``module.<name>`` by ``value`` for every ``name=value``: the checks of
    one task put stand-ins with known behaviour in place of the student's code of the other
    tasks, so that one bug costs points in one task only."""
    missing = object()
    saved = {name: getattr(module, name, missing) for name in attributes}
    try:
        for name, value in attributes.items():
            setattr(module, name, value)
        yield
    finally:
        for name, value in saved.items():
            if value is missing:
                delattr(module, name)
            else:
                setattr(module, name, value)


# -- running one task -------------------------------------------------------------------------
_STUDENT: "Student | None" = None


def _student_frames(tb) -> list[str]:
    """``File ..., line ..., in ...`` lines of the traceback frames inside the student's files."""
    return frames_in(_STUDENT.folder, tb) if _STUDENT is not None else []


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "can't allocate memory" in str(exc) \
        or "not enough memory" in str(exc).lower()


def _reap_strays() -> None:
    """In the grading sandbox the kernel is the first process of its own process namespace and
    runs under a user id of its own: end every other process (what a task forked and left
    running), so that it cannot slow down or block the checks of the next task."""
    if os.environ.get("GLYPH_EBM_SANDBOX") != "namespaces" or os.getpid() != 1:
        return
    import signal

    try:
        os.kill(-1, signal.SIGKILL)            # every process this one may signal, except itself
    except ProcessLookupError:
        return                                 # there was none
    while True:                                # collect them all, so they stop counting as processes
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break


@contextmanager
def task(task_id: str):
    """Run one task's checks; every failure leaves as a :class:`GradingFailure`."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except GradingFailure:
        raise
    except Mismatch as exc:
        raise GradingFailure(task_id, str(exc)) from None
    except StudentImportError as exc:
        raise GradingFailure(task_id, str(exc)) from None
    except NotImplementedError as exc:
        raise GradingFailure(task_id, f"not implemented yet ({first_line(exc) or 'NotImplementedError'})") from None
    except KeyboardInterrupt:
        raise GradingFailure(task_id, "stopped: the test ran past the time limit of a grading cell. "
                                      "Look for an infinite loop or a very long computation.") from None
    except SystemExit:
        raise GradingFailure(task_id, "your code called sys.exit(), exit() or quit(); functions must "
                                      "return a value or raise an exception instead") from None
    except Exception as exc:  # noqa: BLE001 - every student error becomes a message
        details = _student_frames(exc.__traceback__)
        if _is_out_of_memory(exc):
            raise GradingFailure(task_id, f"ran out of memory (the grader allows about {MEMORY_GIB:g} GiB): "
                                          f"{first_line(exc)}. Is a buffer or a list growing without bound?",
                                 details) from None
        raise GradingFailure(task_id, f"your code raised {type(exc).__name__}: {first_line(exc)}", details) from None
    finally:
        _reap_strays()


# -- loading the student's files --------------------------------------------------------------
class Student(Exercise):
    """The student's exercise files in ``folder`` (:class:`glyph_ebm.exercise.Exercise`): each
    imported on first use; a file that cannot be imported (syntax error, crash at import,
    missing) is replaced by a placeholder, so only the tasks that use it fail."""

    def __init__(self, folder):
        super().__init__(folder, placeholder=_placeholder_module)

    def notes(self) -> list[str]:
        """One line per file that could not be imported."""
        return [self.failures[m] for m in MODULES if m in self.failures]


def _placeholder_module(name: str, reason: str) -> types.ModuleType:
    """Stands in for a student file that failed to import: every use raises ``reason``."""
    module = types.ModuleType(name)
    message = f"{reason} (needed here through {name})"
    module.__placeholder__ = reason

    def unavailable(*args, **kwargs):
        raise StudentImportError(message)

    class CNNModel(nn.Module):
        """Placeholder network: can be built (so JEM can be), fails when used."""

        def __init__(self, *args, **kwargs):
            super().__init__()
            self.placeholder = nn.Linear(1, 1)

        forward = get_logits = unavailable

    def missing_attribute(attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return unavailable

    module.CNNModel = CNNModel
    module.__getattr__ = missing_attribute
    return module


def _limit_memory(gib: float) -> None:
    """Cap further data allocations of this process (Linux ``RLIMIT_DATA``), so that a runaway
    allocation raises ``MemoryError`` in one cell instead of getting the kernel killed."""
    try:
        import resource

        status = Path("/proc/self/status").read_text()
        used = int(re.search(r"VmData:\s+(\d+)\s*kB", status).group(1)) * 1024
    except (ImportError, OSError, AttributeError):
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = used + int(gib * 2 ** 30)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def setup(folder: str | os.PathLike = ".", memory_gib: float | None = MEMORY_GIB, threads: int | None = None) -> Student:
    """Prepare a grading kernel for the student files in ``folder`` (default: the notebook's).

    The student's files are loaded by :mod:`glyph_ebm.exercise` (private module names, nothing
    left on ``sys.path``); uses a non-interactive matplotlib backend and caps memory
    (``memory_gib``; None = no cap).
    """
    global _STUDENT
    import matplotlib

    matplotlib.use("Agg")
    folder = Path(folder).resolve()
    if threads:
        torch.set_num_threads(int(threads))
    if memory_gib:
        _limit_memory(memory_gib)
    _STUDENT = Student(folder)
    return _STUDENT
