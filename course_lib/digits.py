"""scikit-learn's 8x8 digits: the data, a reference classifier, and the chapter-1 DDPM on them.

The DDPM is class-conditional and trained with label dropout (:mod:`course_lib.guidance`), so the one network
draws digits of any class (the null label, as in section 8 of chapter 1) or of a requested class, with or
without classifier-free guidance.

The 1,797 digits ship with
scikit-learn (no download). Each image has 8 x 8 pixels with integer values 0..16; we flatten it to
a vector of D = 64 numbers scaled to [-1, 1] (pixel / 8 - 1), the data range of Ho et al. (2020).

How do we know generated digits look like digits? A small MLP classifier, trained on real digits,
should be *confident* (max softmax probability >= 0.9) on real held-out digits and on good samples
alike. :func:`sample_quality` reports the share of confident generated digits divided by the share
of confident real held-out digits (about 1 for a perfect model), and which classes appear (a model
that draws only "1"s would score well on confidence alone).

The split is fixed: ``train_test_split(test_size=0.25, random_state=0, stratified)``. Both the
classifier and the DDPM train on the ``"train"`` split only; the ``"test"`` split scores the classifier
and serves as the "real held-out digits".
"""
from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import checkpoints, ddpm, guidance, mlp, schedules
from .runtime import progress
from .training import training_loop

SPLITS = ("train", "test", "all")
N_PIXELS = 64
N_CLASSES = 10
CONFIDENT = 0.9            # "confident" = max softmax probability >= 0.9

# --------------------------------------------------------------------------- recipes (see recipes.py)
# The DDPM: the chapter's epsilon-MLP fed the 64 pixels directly (no per-coordinate embedding),
# wider and deeper than for the 2-D toys, with a label embedding (10 digits + the null label) added to the time
# embedding. The label is dropped 30% of the time (Ho & Salimans 2022 use 10-20%; more keeps the unconditional
# model, which section 8 samples, nearly as good as an unconditional network). 1.05 M parameters, a 4.2 MB checkpoint.
DDPM_CONFIG = dict(dim=N_PIXELS, hidden=480, n_blocks=4, emb_size=128, input_emb=False, T=1000, n_classes=N_CLASSES)
DDPM_TRAIN = dict(steps=20_000, batch_size=256, lr=1e-3, ema_decay=0.999, warmup=200, seed=0, p_uncond=0.3)
CLASSIFIER_TRAIN = dict(epochs=200, batch_size=128, lr=1e-3, weight_decay=1e-4, noise=0.3)
RECIPE_THREADS = 1         # one thread: reproducible, and fast even when the second core is busy
SAMPLE_SEED = 0            # generator seed of the 100 digits scored by the recipe and the tests


@contextlib.contextmanager
def num_threads(n: int | None):
    """Temporarily run PyTorch on ``n`` CPU threads (``None``: leave the setting alone).

    This module's networks are small (batches of 100-256 rows, widths 256-512). On the course's 2-core
    machine with the other core busy, two threads were 4 to 20 times *slower* than one (OpenMP threads
    waiting for each other), while an idle machine gains at most 2x from the second thread. One thread
    also makes results independent of the core count, so recipes, tests and notebook use it by default."""
    if n is None:
        yield
        return
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer or None, got {n!r}")
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# --------------------------------------------------------------------------- data
def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")


def load_digits_data(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The digits as ``(x, y)``: x float32 (N, 64) in [-1, 1] (pixel / 8 - 1), y int64 (N,) in 0..9.

    ``split`` is ``"train"`` (1,347 digits), ``"test"`` (450) or ``"all"`` (1,797); the split is
    fixed (stratified, ``random_state=0``), so every call returns the same rows in the same order."""
    _check_split(split)
    x, y = _load_split(split)
    return torch.from_numpy(x.copy()), torch.from_numpy(y.copy())


@functools.lru_cache(maxsize=None)
def _load_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.data.astype(np.float32) / 8.0 - 1.0
    y = d.target.astype(np.int64)
    if split != "all":
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
        x, y = (x_tr, y_tr) if split == "train" else (x_te, y_te)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def _check_pixels(x, name: str = "x") -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[1] != N_PIXELS:
        raise ValueError(f"{name} must have shape (N, {N_PIXELS}) (flattened 8x8 digits), got {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.float()
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def to_images(x) -> np.ndarray:
    """Map rows in [-1, 1] back to 8x8 images in scikit-learn's pixel range [0, 16] (clipped), for plotting.

    ``x`` of shape (N, 64) -> NumPy array of shape (N, 8, 8)."""
    x = _check_pixels(x).detach().cpu().double()
    return ((x + 1.0) * 8.0).clamp(0.0, 16.0).reshape(-1, 8, 8).numpy()


# --------------------------------------------------------------------------- reference classifier
@dataclass
class ClassifierConfig:
    dim: int = N_PIXELS        # input size
    hidden: int = 256          # width of the two hidden layers
    n_classes: int = N_CLASSES

    def to_dict(self) -> dict:
        return asdict(self)


class DigitsClassifier(nn.Module):
    """A two-hidden-layer GELU MLP: 64 pixels -> logits over the 10 digit classes."""

    def __init__(self, config: ClassifierConfig | None = None, **kwargs):
        super().__init__()
        self.config = config or ClassifierConfig(**kwargs)
        c = self.config
        self.net = nn.Sequential(nn.Linear(c.dim, c.hidden), nn.GELU(),
                                 nn.Linear(c.hidden, c.hidden), nn.GELU(),
                                 nn.Linear(c.hidden, c.n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.config.dim:
            raise ValueError(f"DigitsClassifier expects x of shape (B, {self.config.dim}), got {tuple(x.shape)}")
        return self.net(x)


def build_classifier(config: dict) -> DigitsClassifier:
    """Rebuild a classifier from the config stored in a checkpoint."""
    try:
        return DigitsClassifier(ClassifierConfig(**config))
    except TypeError as e:
        raise ValueError(f"bad DigitsClassifier config {config!r}: {e}") from e


def train_classifier(seed: int = 0, epochs: int | None = None, show_progress: bool = True,
                     threads: int | None = RECIPE_THREADS):
    """Train :class:`DigitsClassifier` on the train split with cross-entropy (AdamW, no label smoothing).

    Light augmentation: Gaussian pixel noise (std ``CLASSIFIER_TRAIN["noise"]`` in [-1, 1] units) on
    every batch, which keeps the classifier confident on slightly imperfect (generated) digits.
    About 3 s on one CPU core. Returns ``(model, history)``; the model is in eval mode and history
    holds ``epoch``, ``loss`` (mean per epoch) and ``seconds``. ``threads``: see :func:`num_threads`."""
    with num_threads(threads):
        return _train_classifier(seed, epochs, show_progress)


def _train_classifier(seed: int, epochs: int | None, show_progress: bool):
    hp = dict(CLASSIFIER_TRAIN, epochs=epochs or CLASSIFIER_TRAIN["epochs"])
    if hp["epochs"] < 1:
        raise ValueError(f"epochs must be positive, got {hp['epochs']}")
    x, y = load_digits_data("train")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = DigitsClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    starts = list(range(0, x.shape[0], hp["batch_size"]))          # one epoch: a shuffled pass over the data
    order = {}

    def loss_fn(step):
        if step % len(starts) == 0:
            order["perm"] = torch.randperm(x.shape[0], generator=g)
        idx = order["perm"][starts[step % len(starts)]:starts[step % len(starts)] + hp["batch_size"]]
        xb = x[idx] + hp["noise"] * torch.randn((len(idx), x.shape[1]), generator=g)
        loss = F.cross_entropy(model(xb), y[idx])
        return loss, loss.item() * len(idx)

    history = {"epoch": [], "loss": [], "seconds": 0.0}
    t0, total = time.perf_counter(), 0.0
    bar = progress(total=hp["epochs"], desc="digits classifier") if show_progress else None
    for step, weighted_loss in training_loop(model, loss_fn, range(hp["epochs"] * len(starts)), opt, grad_clip=None):
        total += weighted_loss
        if (step + 1) % len(starts) == 0:                          # the end of an epoch
            history["epoch"].append((step + 1) // len(starts))
            history["loss"].append(total / x.shape[0])
            total = 0.0
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    history["seconds"] = time.perf_counter() - t0
    return model.eval(), history


@torch.no_grad()
def classify(model: nn.Module, x) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted labels (N,) and confidences (N,) = max softmax probability, for digits x of shape (N, 64)."""
    x = _check_pixels(x)
    was_training = model.training
    model.eval()
    probs = model(x).softmax(dim=-1)
    model.train(was_training)
    conf, labels = probs.max(dim=-1)
    return labels, conf


def classifier_metrics(model: nn.Module) -> dict:
    """Test accuracy and share of confident (>= 0.9) predictions on the held-out split."""
    x, y = load_digits_data("test")
    labels, conf = classify(model, x)
    return {"test_accuracy": float((labels == y).float().mean()),
            "confident_share": float((conf >= CONFIDENT).float().mean())}


# --------------------------------------------------------------------------- the DDPM
def ddpm_schedule() -> schedules.NoiseSchedule:
    """Ho et al.'s linear schedule, beta_t from 1e-4 to 0.02, T = 1000."""
    return schedules.linear_schedule(DDPM_CONFIG["T"])


def train_ddpm(steps: int | None = None, show_progress: bool = True, threads: int | None = RECIPE_THREADS):
    """Train the class-conditional epsilon-MLP on the train split with L_simple (eq. 14 of Ho et al. 2020), the
    label dropped 30% of the time (:func:`course_lib.guidance.train_conditional`).

    About 20-30 ms a step on one CPU core (20,000 steps: 7 to 10 minutes). Returns ``(ema_model, history)``
    as :func:`course_lib.training.fit_ema`. ``threads``: see :func:`num_threads`."""
    x, y = load_digits_data("train")
    torch.manual_seed(0)
    model = mlp.EpsMLP(mlp.EpsMLPConfig(**DDPM_CONFIG))
    kw = dict(DDPM_TRAIN, steps=steps or DDPM_TRAIN["steps"])
    with num_threads(threads):
        return guidance.train_conditional(model, x, y, ddpm_schedule(), desc="ddpm_digits",
                                          show_progress=show_progress, **kw)


def sample(model, n: int = 100, seed: int = SAMPLE_SEED, ddim_steps: int | None = None,
           threads: int | None = RECIPE_THREADS, show_progress: bool = False, y=None, w: float = 0.0) -> torch.Tensor:
    """Draw ``n`` digits (n, 64), clipped to [-1, 1]: of any class (``y=None``, the null label) or of the classes
    ``y`` (n,), with classifier-free guidance of scale ``w`` (:class:`course_lib.guidance.Guided`).

    Default: ancestral sampling over all T = 1000 steps (Algorithm 2 of Ho et al. 2020) with
    x0_hat clipped to the data range [-1, 1] at every step, as Ho et al. do for images. With
    ``ddim_steps``: deterministic DDIM (eta = 0, Song et al. 2021, eq. 12) over that many steps.
    100 digits x 1000 steps take about 4 s on one CPU core. ``threads``: see :func:`num_threads`."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    g = torch.Generator().manual_seed(seed)
    shape, sch = (n, N_PIXELS), ddpm_schedule()
    if y is not None or w:
        model = guidance.Guided(model, y, w)      # (a class-conditional network called without a label: no class)
    if ddim_steps is None:
        stream = ddpm.ddpm_sampler(model, shape, sch, generator=g, clip_x0=1.0)
    else:
        stream = ddpm.ddim_sampler(model, shape, sch, steps=ddim_steps, generator=g, clip_x0=1.0)
    if show_progress:
        stream = progress(stream, total=(ddim_steps or sch.T) + 1, desc=f"sampling {n} digits")
    with num_threads(threads):
        return ddpm.final(stream).clamp(-1.0, 1.0)


def sample_quality(model_or_samples, classifier: nn.Module, n: int = 100, seed: int = SAMPLE_SEED,
                   ddim_steps: int | None = None) -> dict:
    """Score generated digits with the reference classifier.

    ``model_or_samples`` is either an epsilon-model (then ``n`` digits are drawn with :func:`sample`,
    generator seeded with ``seed``) or a tensor of samples (N, 64). Returns a dict with
    ``real_share`` (confident share on the held-out digits), ``gen_share`` (on the samples),
    ``ratio`` = gen_share / real_share, ``classes`` (sorted list of predicted classes present),
    ``n_classes`` and ``counts`` (per-class counts of predicted labels, a list of 10 ints)."""
    if isinstance(model_or_samples, torch.Tensor):
        x = _check_pixels(model_or_samples, "samples")
    elif callable(model_or_samples):
        x = sample(model_or_samples, n, seed, ddim_steps)
    else:
        raise ValueError(f"expected an epsilon-model or a (N, 64) tensor, got {type(model_or_samples).__name__}")
    labels, conf = classify(classifier, x)
    _, real_conf = classify(classifier, load_digits_data("test")[0])
    real_share = float((real_conf >= CONFIDENT).float().mean())
    gen_share = float((conf >= CONFIDENT).float().mean())
    counts = torch.bincount(labels, minlength=N_CLASSES).tolist()
    classes = sorted(int(c) for c in torch.unique(labels))
    return {"real_share": real_share, "gen_share": gen_share, "ratio": gen_share / real_share,
            "classes": classes, "n_classes": len(classes), "counts": counts}


# --------------------------------------------------------------------------- shipped checkpoints
def load_classifier() -> DigitsClassifier:
    """The shipped reference classifier (``data/checkpoints/digits_classifier.pt``), in eval mode."""
    state, config, _ = checkpoints.load_checkpoint("digits_classifier")
    model = build_classifier(config)
    model.load_state_dict(state)
    return model.eval()


def load_ddpm() -> mlp.EpsMLP:
    """The shipped class-conditional digits DDPM (EMA weights, ``data/checkpoints/ddpm_digits.pt``), in eval
    mode. Sample it with :func:`sample`; as a plain ``model(x, t)`` it is the unconditional model."""
    state, config, _ = checkpoints.load_checkpoint("ddpm_digits")
    model = mlp.build(config)
    model.load_state_dict(state)
    return model.eval()


def run_recipe(kind: str):
    """Train one shipped digits model; returns ``(model, metrics, train_seconds)`` for recipes.py.

    ``"classifier"``: the reference classifier; metrics are its test accuracy and confident share.
    ``"ddpm"``: the DDPM; metrics are its final loss and the sample-quality bar measured on 100
    ancestral samples (1000 steps, seed ``SAMPLE_SEED``) with a classifier trained by this module
    (the same recipe as the shipped one)."""
    if kind not in ("ddpm", "classifier"):
        raise ValueError(f"unknown digits recipe {kind!r}; use 'ddpm' or 'classifier'")
    with num_threads(RECIPE_THREADS):
        t0 = time.perf_counter()
        if kind == "classifier":
            model, hist = train_classifier(seed=0, show_progress=True)
            seconds = time.perf_counter() - t0
            m = classifier_metrics(model)
            metrics = {"test_accuracy": m["test_accuracy"], "confident_share": m["confident_share"],
                       "final_loss": hist["loss"][-1], "epochs": CLASSIFIER_TRAIN["epochs"]}
        else:
            model, hist = train_ddpm()
            seconds = time.perf_counter() - t0
            classifier, _ = train_classifier(seed=0)
            t1 = time.perf_counter()
            q = sample_quality(model, classifier)
            metrics = {"final_loss": hist["loss"][-1], "gen_confident_share": q["gen_share"],
                       "real_confident_share": q["real_share"], "confident_ratio": q["ratio"],
                       "n_classes": q["n_classes"], "sample_seconds_100x1000": time.perf_counter() - t1,
                       "train_steps": DDPM_TRAIN["steps"]}
            for w in (0.0, 2.0):      # asked-for class = classifier's label, 10 digits of each class, DDIM 50 steps
                want = torch.arange(N_CLASSES).repeat_interleave(10)
                got, _ = classify(classifier, sample(model, 100, ddim_steps=50, y=want, w=w))
                metrics[f"class_accuracy_w{w:g}"] = float((got == want).float().mean())
    metrics = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
    return model, metrics, seconds
