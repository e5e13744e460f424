"""RL for a diffusion LM: an ELBO-based, block-level, clipped policy-gradient update in the spirit of EBPO.

LLaDA 2.1 (arXiv 2602.08676, section 3.2, eq. 4-5) trains its policy with
EBPO (ELBO-based Block-level Policy Optimization). A diffusion LM has no cheap exact log p(y | x), so the
PPO ratio rho = pi_theta(y | x) / pi_old(y | x) is estimated from ELBO terms:

    log rho(y | x) ~= sum_n w_n sum_b [ log p_theta(y^b | z_n, x) - log p_old(y^b | z_n, x) ]

where z_n is the answer y noised at level t_n (each answer token masked with probability t_n), the inner sum
runs over the answer's blocks b (each block scored given the clean earlier blocks: LLaDA 2.1 computes all
blocks in one pass over ``[z_n ; y]`` with the block-diffusion mask) and log p(y^b | z_n, x) sums the
log-probabilities of the masked tokens of block b. The same noise draws serve both policies (common random
numbers), so the estimate is exactly 0 when theta = old. The objective is PPO's clipped surrogate with
group-normalised advantages (GRPO style):

    J = E[ min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A) ],   A_i = (r_i - mean_group r) / (std_group r + 1e-6)

The paper gives neither N, nor w_n, nor eps (LLaDA 2.1, arXiv 2602.08676, section 3.2). Our choices: N = 2 noise
levels per update at stratified t_n in [0.2, 1] (never ~0: a nearly clean answer scores almost nothing), w_n = 1/(N
t_n) (the ELBO's own 1/t weight, so sum_n w_n (...) estimates the difference of the two ELBOs), eps_low = eps_high =
0.2 (PPO's default). Chapter 4's answers fit in one block, so B = 1; ``block_length`` splits longer answers.

The reward must be verifiable: :func:`course_lib.arith.grade` (exact match of the sum).
"""
from __future__ import annotations

import copy
import time

import torch

from .masked import exclude_mask
from .runtime import progress
from .training import optimizer_step


def _check_unit(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return float(value)


def _check_layout(x, prompt_length) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.dtype != torch.long:
        raise ValueError(f"x must be a (B, L) long tensor, got {tuple(getattr(x, 'shape', ()))}")
    if isinstance(prompt_length, bool) or not isinstance(prompt_length, int) or not 0 <= prompt_length < x.shape[1]:
        raise ValueError(f"prompt_length must be an integer in [0, L - 1] = [0, {x.shape[1] - 1}], "
                         f"got {prompt_length!r}")


def group_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Group-normalised advantages (GRPO): rewards (n_prompts * group_size,) ordered prompt by prompt ->
    (r - group mean) / (group std + 1e-6). A group whose samples all get the same reward gets advantage 0."""
    r = torch.as_tensor(rewards, dtype=torch.float32)
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    if r.ndim != 1 or len(r) == 0 or len(r) % group_size:
        raise ValueError(f"rewards must be 1-D with a length divisible by group_size = {group_size}")
    g = r.view(-1, group_size)
    return ((g - g.mean(1, keepdim=True)) / (g.std(1, unbiased=False, keepdim=True) + 1e-6)).view(-1)


def noise_answers(x: torch.Tensor, prompt_length: int, t: torch.Tensor, mask_id: int, generator=None):
    """Mask each answer token of ``x`` (B, L) with probability ``t[b]``; the prompt is kept. Returns
    ``(z, masked)``."""
    _check_layout(x, prompt_length)
    t = torch.as_tensor(t)
    if t.shape != (x.shape[0],) or not t.is_floating_point() or not bool(((t >= 0) & (t <= 1)).all()):
        raise ValueError(f"t must be a float tensor of shape (B,) = ({x.shape[0]},) with values in [0, 1]")
    u = torch.rand(x.shape, generator=generator)
    answer = torch.arange(x.shape[1]) >= prompt_length
    masked = answer[None] & (u < t[:, None])
    return torch.where(masked, torch.full_like(x, mask_id), x), masked


def block_elbo_terms(model, x: torch.Tensor, z: torch.Tensor, masked: torch.Tensor, prompt_length: int,
                     block_length: int, mask_id: int) -> torch.Tensor:
    """(B, n_blocks): sum over the masked tokens of each answer block b of log p(y_i | z), where the model sees
    the noisy block b, the clean blocks before it, and masks after it (the inference layout of block decoding).
    With one block this is one forward pass."""
    _check_layout(x, prompt_length)
    if z.shape != x.shape or masked.shape != x.shape or masked.dtype != torch.bool:
        raise ValueError("x, z and masked (bool) must share the shape (B, L)")
    L = x.shape[1]
    gen = L - prompt_length
    if isinstance(block_length, bool) or not isinstance(block_length, int) or block_length < 1:
        raise ValueError(f"block_length must be a positive integer, got {block_length!r}")
    if gen % block_length:
        raise ValueError(f"block_length ({block_length}) must divide the answer length ({gen})")
    terms = []
    for b in range(gen // block_length):
        lo, hi = prompt_length + b * block_length, prompt_length + (b + 1) * block_length
        inp = x.clone()
        inp[:, lo:hi] = z[:, lo:hi]
        inp[:, hi:] = mask_id
        logp = torch.log_softmax(exclude_mask(model(inp), mask_id).float(), -1)
        tok = logp.gather(-1, x.unsqueeze(-1)).squeeze(-1)
        terms.append((tok * masked)[:, lo:hi].sum(1))
    return torch.stack(terms, 1)


def ebpo_log_ratio(model, old_model, x: torch.Tensor, prompt_length: int, t_values, mask_id: int,
                   block_length: int | None = None, generator=None) -> torch.Tensor:
    """log rho(y | x) per row (B,), EBPO's eq. 5 with w_n = 1 / (N t_n) and shared noise draws for both policies.
    Gradients flow through ``model`` only."""
    t_values = [float(t) for t in t_values]
    if not t_values or any(not 0.0 < t <= 1.0 for t in t_values):
        raise ValueError(f"t_values must be noise levels in (0, 1], got {t_values}")
    _check_layout(x, prompt_length)
    block_length = x.shape[1] - prompt_length if block_length is None else block_length
    out = torch.zeros(x.shape[0])
    for t in t_values:
        z, masked = noise_answers(x, prompt_length, torch.full((x.shape[0],), t), mask_id, generator)
        new = block_elbo_terms(model, x, z, masked, prompt_length, block_length, mask_id).sum(1)
        with torch.no_grad():
            old = block_elbo_terms(old_model, x, z, masked, prompt_length, block_length, mask_id).sum(1)
        out = out + (new - old) / (len(t_values) * t)
    return out


def clipped_objective(log_ratio: torch.Tensor, advantages: torch.Tensor, eps_low: float = 0.2,
                      eps_high: float = 0.2) -> torch.Tensor:
    """PPO's clipped surrogate (to maximise), averaged over rows: mean(min(rho A, clip(rho, 1-eps_low,
    1+eps_high) A)) (EBPO, LLaDA 2.1 eq. 4)."""
    _check_unit(eps_low, "eps_low")
    if not eps_high >= 0:
        raise ValueError(f"eps_high must be >= 0, got {eps_high!r}")
    if log_ratio.shape != advantages.shape:
        raise ValueError("log_ratio and advantages must have the same shape")
    rho = log_ratio.exp()
    return torch.minimum(rho * advantages, rho.clamp(1 - eps_low, 1 + eps_high) * advantages).mean()


def train_ebpo(model, sample_fn, reward_fn, prompt_fn, iterations: int, group_size: int = 8,
               prompts_per_iter: int = 32, inner_steps: int = 2, lr: float = 1e-4, n_t: int = 2,
               eps_clip: float = 0.2, mask_id: int = 13, seed: int = 0, eval_fn=None, eval_every: int = 25,
               max_seconds: float | None = None, show_progress: bool = True):
    """EBPO-style RL. Each iteration: ``prompt_fn(n, generator)`` gives n prompts (and whatever the reward
    needs); ``sample_fn(model, prompts, generator)`` draws ``group_size`` answers per prompt from the current
    policy (the old policy of this iteration); ``reward_fn(x, meta)`` scores them; then ``inner_steps``
    AdamW steps on -J with fresh noise draws each. ``eval_fn(model)`` (e.g. held-out reward) runs every
    ``eval_every`` iterations and at the end. Returns ``(model, history)``."""
    for name, v in (("iterations", iterations), ("group_size", group_size), ("prompts_per_iter", prompts_per_iter),
                    ("inner_steps", inner_steps), ("n_t", n_t), ("eval_every", eval_every)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    _check_unit(eps_clip, "eps_clip")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    hist = {"iteration": [], "train_reward": [], "eval_iteration": [], "eval": [], "clip_fraction": []}
    bar = progress(range(iterations), desc="EBPO") if show_progress else range(iterations)
    t0 = time.perf_counter()

    def evaluate(i):
        if eval_fn is not None:
            model.eval()
            hist["eval_iteration"].append(i)
            hist["eval"].append(eval_fn(model))

    evaluate(0)
    for it in bar:
        old = copy.deepcopy(model).eval()
        prompts, meta = prompt_fn(prompts_per_iter, g)
        prompts = prompts.repeat_interleave(group_size, 0)
        meta = meta.repeat_interleave(group_size, 0)
        model.eval()
        x = sample_fn(old, prompts, g)
        rewards = reward_fn(x, meta).float()
        adv = group_advantages(rewards, group_size)
        keep = adv != 0                                   # groups with one reward value carry no signal
        model.train()
        clipped = []
        if bool(keep.any()):
            for _ in range(inner_steps):
                lr_ = ebpo_log_ratio(model, old, x[keep], prompts.shape[1],
                                     [0.2 + 0.8 * (k + torch.rand((), generator=g).item()) / n_t for k in range(n_t)],
                                     mask_id, generator=g)
                optimizer_step(model, opt, -clipped_objective(lr_, adv[keep], eps_clip, eps_clip))
                clipped.append(((lr_.exp() - 1).abs() > eps_clip).float().mean().item())
        hist["iteration"].append(it + 1)
        hist["train_reward"].append(rewards.mean().item())
        hist["clip_fraction"].append(sum(clipped) / max(len(clipped), 1))
        if show_progress:
            bar.set_postfix(reward=f"{rewards.mean().item():.3f}")
        done = max_seconds is not None and time.perf_counter() - t0 > max_seconds
        if (it + 1) % eval_every == 0 or it == iterations - 1 or done:
            evaluate(it + 1)
        if done:
            break
    hist["seconds"] = time.perf_counter() - t0
    model.eval()
    return model, hist
