"""Chapter 1's demos (DDPM and score matching): each demo's builder (``*_demo``) and the function that computes its inputs
from the shipped checkpoints (``*_inputs``), which the chapter and the lecture gallery both call:
``demo = noising_demo(**noising_inputs())``. The ``*_inputs`` functions import the models when they run, so that
the gallery, which builds every demo from stored inputs, starts without torch.
"""
from __future__ import annotations

from typing import Sequence
import ipywidgets as W
import numpy as np
from .. import viz
from .base import Demo, new_figure, slider


def noising_demo(x0, alpha_bars: dict, seed: int = 0, step: int = 10) -> Demo:
    """(Demo 1a) Drag t: the 2-D cloud x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, beside alpha-bar_t and
    log SNR(t) of the chosen schedule with a marker at t. ``alpha_bars`` maps a schedule's name to its
    alpha-bar_t for t = 0..T (``schedule.alpha_bars``)."""
    names = list(alpha_bars)
    T = len(alpha_bars[names[0]]) - 1
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.ndim != 2 or x0.shape[1] != 2:
        raise ValueError(f"x0 must have shape (N, 2), got {x0.shape}")
    eps = np.random.RandomState(seed).randn(*x0.shape)
    ab = {n: np.asarray(a, dtype=np.float64) for n, a in alpha_bars.items()}
    log_snr = {n: np.log10(a[1:] / (1 - a[1:])) for n, a in ab.items()}
    fig, (ax, ax2) = new_figure(1, 2, figsize=(8.4, 3.6))
    sc = ax.scatter(x0[:, 0], x0[:, 1], s=3, alpha=0.5, color=viz.COLORS["data"])
    ax.set(xlim=(-4, 4), ylim=(-4, 4), aspect="equal", title="$x_t$")
    ts = np.arange(T + 1)
    # two neutral inks (solid and dashed): blue and orange mean data and model samples everywhere in the course
    (l_ab,) = ax2.plot(ts, ab[names[0]], color="#222222", label=r"$\bar\alpha_t$")
    ax3 = ax2.twinx()
    (l_snr,) = ax3.plot(ts[1:], log_snr[names[0]], color="#666666", ls="--", label=r"$\log_{10}$ SNR")
    ax2.set(xlabel="t", ylim=(-0.02, 1.02), xlim=(0, T))
    ax3.set(ylim=(-5.5, 4.5), ylabel=r"$\log_{10}$ SNR")
    ax3.grid(False)
    vline = ax2.axvline(0, color="#BBBBBB", lw=4, zorder=0)
    # above the panel: the two curves cross the whole plot under either schedule, so inside it they would hide
    ax2.legend(handles=[l_ab, l_snr], loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    fig.tight_layout()

    def update(t: int, schedule: str) -> str:
        a = ab[schedule][t]
        sc.set_offsets(np.sqrt(a) * x0 + np.sqrt(1 - a) * eps)
        l_ab.set_ydata(ab[schedule])
        l_snr.set_ydata(log_snr[schedule])
        vline.set_xdata([t, t])
        snr_t = "&infin;" if t == 0 else f"{a / (1 - a):.3g}"
        return (f"<b>{schedule}</b> schedule, t = {t}: &alpha;&#772; = {a:.4f}, signal scale &radic;&alpha;&#772; = "
                f"{np.sqrt(a):.3f}, noise scale = {np.sqrt(1 - a):.3f}, SNR = {snr_t}")

    controls = {"t": slider("t", 0, T, 0, step),
                "schedule": W.Dropdown(options=names, value=names[0], description="schedule")}
    return Demo("noising", "Forward process: drag t", controls, fig, update, [sc, l_ab, l_snr, vline])


def trajectory_demo(trajectories: dict, n_paths: int = 25) -> Demo:
    """(Demo 1c) Scrub through reverse trajectories. ``trajectories`` maps a sampler name to
    ``(times, states)`` with states (K, N, 2), first x_T and last x_0 (all with the same K)."""
    names = list(trajectories)
    K = len(trajectories[names[0]][0])
    if any(len(v[0]) != K or len(v[1]) != K for v in trajectories.values()):
        raise ValueError("all trajectories must hold the same number of frames")
    data = {n: (list(ts), np.asarray(st, dtype=np.float32)) for n, (ts, st) in trajectories.items()}
    fig, ax = new_figure(1, 1, figsize=(4.6, 4.4))
    st0 = data[names[0]][1]
    sc = ax.scatter(st0[0, :, 0], st0[0, :, 1], s=3, alpha=0.5, color=viz.SAMPLER_COLORS.get(names[0], viz.COLORS["model"]))
    paths = [ax.plot([], [], lw=0.8, alpha=0.7, color="k")[0] for _ in range(n_paths)]
    ax.set(xlim=(-4, 4), ylim=(-4, 4), aspect="equal")
    fig.tight_layout()

    def update(step: int, sampler: str) -> str:
        ts, st = data[sampler]
        sc.set_offsets(st[step])
        sc.set_color(viz.SAMPLER_COLORS.get(sampler, viz.COLORS["model"]))
        for i, p in enumerate(paths):
            p.set_data(st[: step + 1, i, 0], st[: step + 1, i, 1])
        return (f"<b>{sampler}</b>: frame {step} of {K - 1}, t = {ts[step]:.0f} "
                f"(frame 0 is pure noise x_T, frame {K - 1} the samples); black lines follow {n_paths} particles")

    controls = {"step": slider("frame", 0, K - 1, 0),
                "sampler": W.Dropdown(options=names, value=names[0], description="sampler")}
    return Demo("trajectory", "Reverse process: scrub the trajectory", controls, fig, update, [sc] + paths)


def score_field_demo(grid: np.ndarray, times: Sequence[int], learned: np.ndarray, exact: np.ndarray,
                     log_density: np.ndarray, errors: Sequence[float]) -> Demo:
    """(Demo 1b) Learned versus exact score field over t. ``grid`` (G, G, 2); ``learned``/``exact``
    (len(times), G, G, 2); ``log_density`` (len(times), H, W) of q_t; ``errors`` the mean relative error."""
    learned, exact, log_density = np.asarray(learned), np.asarray(exact), np.asarray(log_density)
    if learned.shape != exact.shape or len(learned) != len(times) or len(log_density) != len(times):
        raise ValueError("learned, exact and log_density need one entry per time")

    def unit(v):
        return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)

    fig, axes = new_figure(1, 2, figsize=(8.4, 4.1))
    ext = (grid[..., 0].min(), grid[..., 0].max(), grid[..., 1].min(), grid[..., 1].max())
    ims, qs = [], []
    for ax, field, title, col in zip(axes, (exact, learned), ("exact score", "learned score"),
                                     (viz.COLORS["exact"], viz.COLORS["learned"])):
        ims.append(ax.imshow(log_density[0], origin="lower", extent=ext, cmap="Blues", aspect="equal"))
        u = unit(field[0])
        qs.append(ax.quiver(grid[..., 0], grid[..., 1], u[..., 0], u[..., 1], color=col, scale=28, width=0.005))
        ax.set_title(title)
        ax.grid(False)
    fig.tight_layout()

    def update(i: int) -> str:
        for im, q, field in zip(ims, qs, (exact, learned)):
            im.set_data(log_density[i])
            im.set_clim(log_density[i].max() - 8, log_density[i].max())
            u = unit(field[i])
            q.set_UVC(u[..., 0], u[..., 1])
        return (f"t = {times[i]} (t/T = {times[i] / 1000:.3f}): mean relative error ||s<sub>&theta;</sub> - s|| / ||s|| "
                f"over samples of q<sub>t</sub> = <b>{errors[i]:.3f}</b>. Arrows show directions; shading is log q<sub>t</sub>.")

    controls = {"i": slider("t index", 0, len(times) - 1, 0)}
    return Demo("score", "Learned vs exact score field", controls, fig, update, ims + qs)


def digits_demo(times: Sequence[int], forward: np.ndarray, reverse: np.ndarray) -> Demo:
    """(Demo 1d) Digits: real digits noised to t (top) and one reverse run passing through t (bottom).
    ``forward``/``reverse``: (len(times), n, 8, 8) images in [0, 16]."""
    forward, reverse = np.asarray(forward), np.asarray(reverse)
    if forward.shape != reverse.shape or forward.ndim != 4 or len(forward) != len(times):
        raise ValueError("forward and reverse must both have shape (len(times), n, 8, 8)")
    n = forward.shape[1]
    fig, axes = new_figure(2, n, figsize=(0.95 * n, 2.1))
    ims = []
    for r, arr in enumerate((forward, reverse)):
        for j in range(n):
            ax = axes[r, j]
            ims.append((r, j, ax.imshow(np.clip(arr[0, j], 0, 16), cmap="gray_r", vmin=0, vmax=16)))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
    axes[0, 0].set_ylabel("forward")
    axes[1, 0].set_ylabel("reverse")
    fig.subplots_adjust(left=0.06, right=0.99, top=0.98, bottom=0.02, wspace=0.05, hspace=0.08)

    def update(i: int) -> str:
        for r, j, im in ims:
            im.set_data(np.clip((forward, reverse)[r][i, j], 0, 16))
        return (f"t = {times[i]}: top, real held-out digits noised to t; bottom, one DDPM reverse run "
                f"at the same t (it ends, at t = 0, in generated digits)")

    controls = {"i": slider("t index", 0, len(times) - 1, 0)}
    return Demo("digits", "Digits: noising and denoising", controls, fig, update, [im for _, _, im in ims])


# ------------------------------------------------------------------ inputs (from the shipped checkpoints)
def _toy_model():
    from course_lib import checkpoints, mlp
    sd, cfg, _ = checkpoints.load_checkpoint("ddpm2d_gmm")
    model = mlp.build(cfg)
    model.load_state_dict(sd)
    return model.eval()


def noising_inputs() -> dict:
    """Demo 1a: 1,500 points of the course mixture and the alpha-bars of the linear and cosine schedules."""
    from course_lib import schedules, toy2d
    lin, cos = schedules.linear_schedule(1000), schedules.cosine_schedule(1000)
    return {"x0": toy2d.course_gmm().sample(1500, seed=5).numpy(),
            "alpha_bars": {"linear": lin.alpha_bars.numpy(), "cosine": cos.alpha_bars.numpy()}}


def score_field_inputs() -> dict:
    """Demo 1b: the shipped mixture model's score and the exact one on a 21 x 21 grid at 12 times, the noised
    density on a 90 x 90 grid, and the model's mean relative score error at each time (2,000 points)."""
    import torch
    from course_lib import schedules, score, toy2d
    gmm, lin, model = toy2d.course_gmm(), schedules.linear_schedule(1000), _toy_model()
    field_ts = [1, 10, 25, 50, 100, 175, 250, 375, 500, 625, 750, 1000]
    fx, fy = np.meshgrid(np.linspace(-3.5, 3.5, 21), np.linspace(-3.5, 3.5, 21))
    fpts = torch.tensor(np.stack([fx.ravel(), fy.ravel()], 1), dtype=torch.float32)
    dx, dy = np.meshgrid(np.linspace(-3.5, 3.5, 90), np.linspace(-3.5, 3.5, 90))
    dpts = torch.tensor(np.stack([dx.ravel(), dy.ravel()], 1), dtype=torch.float64)
    learned, exact, logd, errs = [], [], [], []
    with torch.no_grad():
        for t in field_ts:
            q_t = gmm.noised(float(lin.alpha_bars[t]))
            exact.append(q_t.score(fpts).numpy().reshape(21, 21, 2))
            learned.append(score.model_score(model, fpts, t, lin).numpy().reshape(21, 21, 2))
            logd.append(q_t.log_prob(dpts).numpy().reshape(90, 90).astype(np.float32))
            xs = q_t.sample(2000, seed=t)
            errs.append(score.relative_error(score.model_score(model, xs, t, lin), q_t.score(xs)))
    return {"grid": np.stack([fx, fy], -1), "times": field_ts, "learned": np.stack(learned),
            "exact": np.stack(exact), "log_density": np.stack(logd), "errors": errs}


def trajectory_inputs() -> dict:
    """Demo 1c: the trajectories (51 frames of 2,000 points) of the shipped mixture model under four samplers, from
    the chapter's artefact ``ch1_samplers`` (:func:`course_lib.recipes.ch1_samplers`)."""
    from course_lib import artefacts
    bank = artefacts.load("ch1_samplers")
    return {"trajectories": {name: (bank[f"times/{name}"].tolist(), bank[f"trajectory/{name}"].transpose(1, 0, 2))
                             for name in ("DDPM", "DDIM", "reverse SDE", "PF-ODE")}}


def digits_inputs() -> dict:
    """Demo 1d: ten held-out digits noised to 26 times, and one reverse run of the shipped digits model
    (1,000 ancestral steps, seed 12) at the same times, as 8 x 8 images."""
    import torch
    from course_lib import ddpm, digits
    model = digits.load_ddpm()
    g = torch.Generator().manual_seed(12)
    sch = digits.ddpm_schedule()
    times, rev = ddpm.trajectory(ddpm.ddpm_sampler(model, (10, 64), sch, generator=g, clip_x0=1.0), keep=26)
    x_real = digits.load_digits_data("test")[0][:10]
    eps = torch.randn(x_real.shape, generator=g)
    fwd = torch.stack([ddpm.q_sample(x_real, t, sch, noise=eps) for t in times])

    def to_img(arr):
        return np.stack([digits.to_images(a.clamp(-1, 1)) for a in arr]).astype(np.float32)

    return {"times": [int(t) for t in times], "forward": to_img(fwd), "reverse": to_img(rev)}
