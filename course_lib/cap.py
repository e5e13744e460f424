"""CAP, LLaDA 2.0's confidence-aware parallel training: sharpen the predictions the model already gets right.

LLaDA 2.0 (Bie et al., arXiv 2512.15745, section 5.2; dFactory's
``compute_confidence_loss``) adds to the SFT loss the entropy of the predicted distribution, averaged only
over masked positions whose most likely token is the right one:

    L = L_SFT + lambda * L_conf,   L_conf = mean_{i masked, argmax_v p(v | x_t)_i = x0_i}  H(p(. | x_t)_i)

Lowering the entropy where the model is already right raises its confidence there, so a confidence
threshold at decoding time lets more tokens through per step (higher TPF) without teaching anything
wrong: positions the model gets wrong are left to the SFT term alone. The lambda of the released models is
not published; dFactory's documentation recommends ``confidence_beta = 2.0``, which chapter 4 uses.
"""
from __future__ import annotations

import torch

from .masked import exclude_mask


def confidence_loss(logits: torch.Tensor, x0: torch.Tensor, masked: torch.Tensor, mask_id: int) -> torch.Tensor:
    """L_conf: mean entropy (nats) of softmax(logits) over the masked positions predicted correctly; 0 (with a
    gradient path) when there is none. ``logits`` (B, L, V), ``x0`` (B, L) long, ``masked`` (B, L) bool.
    The [MASK] logit is excluded, as everywhere in the course."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3:
        raise ValueError(f"logits must have shape (B, L, V), got {tuple(getattr(logits, 'shape', ()))}")
    if x0.shape != logits.shape[:2] or masked.shape != x0.shape or masked.dtype != torch.bool:
        raise ValueError("x0 (long) and masked (bool) must have the logits' (B, L) shape")
    if not 0 <= mask_id < logits.shape[-1]:
        raise ValueError(f"mask_id {mask_id} is outside the vocabulary of size {logits.shape[-1]}")
    logp = torch.log_softmax(exclude_mask(logits, mask_id).float(), dim=-1)
    p = logp.exp()
    entropy = -(p * torch.where(p > 0, logp, torch.zeros_like(logp))).sum(-1)       # 0 log 0 = 0
    correct = masked & (logp.argmax(-1) == x0)
    n = correct.sum()
    if int(n) == 0:
        return (entropy * 0).sum()
    return (entropy * correct).sum() / n
