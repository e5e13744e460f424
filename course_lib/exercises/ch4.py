"""Checkers of chapter 4's exercises (LLaDA 2.0 and 2.1).

Use: ``exercises.check_...(my_function)`` in the chapter's "Your turn" cells; see :mod:`.base`.
"""
from __future__ import annotations

from typing import Callable

import torch

from .base import call, fail, not_mask


def _pair_of_tensors(number: str, out, names: str):
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail(number, f"return a tuple of two tensors ({names}), got {type(out).__name__}")
    try:
        return tuple(torch.as_tensor(o) for o in out)
    except Exception:
        fail(number, f"return a tuple of two tensors ({names}), got ({type(out[0]).__name__}, "
                      f"{type(out[1]).__name__})")


def _topk_routing_ref(logits: torch.Tensor, k: int):
    """Reference of Exercise 1.1 (Switch / Mixtral top-k routing, renormalised)."""
    E = logits.shape[-1]
    if not 1 <= k <= E:
        raise ValueError(f"k must lie in [1, {E}], got {k}")
    top, experts = torch.softmax(logits, -1).topk(k, dim=-1)
    return experts, top / top.sum(-1, keepdim=True)


def check_topk_routing(fn: Callable) -> bool:
    """Exercise 1.1: ``fn(logits, k) -> (experts, weights)``, a mixture-of-experts router. ``logits`` (T, E):
    one router logit per token and expert; return ``experts`` (T, k) long, the k most probable experts of
    each token, best first (the order of ``torch.topk``), and ``weights`` (T, k), their probabilities
    under the softmax over the E experts, renormalised to sum to 1 over the k (Mixtral; GShard's top-2;
    LLaDA 2.0 renormalises its chosen scores too: ``norm_topk_prob`` in the dFactory model configs).
    ``k`` larger than E must raise ValueError.

    Equivalent correct answer, accepted: softmax over the k largest *logits* only (the common factor
    1 / sum over all E cancels in the renormalisation)."""
    number = "1.1"
    g = torch.Generator().manual_seed(41)
    cases = []
    for T, E, k in ((40, 8, 2), (24, 6, 3), (10, 5, 1)):
        logits = 1.5 * torch.randn(T, E, generator=g, dtype=torch.float64)
        logits[0] = torch.linspace(2.0, -2.0, E, dtype=torch.float64)          # a token whose best experts are
        logits[0, 0] -= 1.0                                                    # not in id order
        logits[0] = logits[0, torch.randperm(E, generator=g)]
        logits[:, 0] += 2.0                                                    # a popular expert: softmax over the
        cases.append((logits, k))                                              # tokens then ranks differently
    for logits, k in cases:
        T, E = logits.shape
        arg = logits.clone()
        out = call(number, fn, arg, k)
        experts, weights = _pair_of_tensors(number, out, "experts, weights")
        if not torch.equal(arg, logits):
            fail(number, "do not modify the logits in place")
        if experts.shape != (T, k) or weights.shape != (T, k):
            fail(number, f"for logits of shape (T, E) = {(T, E)} and k = {k}, return experts and weights of shape "
                          f"(T, k) = {(T, k)}; got {tuple(experts.shape)} and {tuple(weights.shape)} (take the top k "
                          "along the experts, dim=-1)")
        if experts.dtype != torch.long:
            fail(number, f"experts must be a LongTensor of expert ids (torch.topk's indices), got {experts.dtype}")
        if not weights.is_floating_point() or not bool(torch.isfinite(weights).all()):
            fail(number, "weights must be finite floating-point numbers")
        want_e, want_w = _topk_routing_ref(logits, k)
        w = weights.double()
        if torch.equal(experts, want_e) and torch.allclose(w, want_w, rtol=1e-5, atol=1e-6):
            continue
        p = torch.softmax(logits, -1)
        top, _ = p.topk(k, dim=-1)
        p_tok = torch.softmax(logits, 0)
        top_tok, e_tok = p_tok.topk(k, dim=-1)
        low, e_low = p.topk(k, dim=-1, largest=False)
        variants = {
            "renormalise the k weights so they sum to 1 (divide the top-k probabilities by their sum): without it a "
            "token's expert outputs are scaled down by the probability mass of the experts it did not choose":
                (want_e, top),
            "take the softmax over the experts (dim=-1, each token's probabilities over the E experts sum to 1), "
            "not over the tokens (dim=0)": (e_tok, top_tok / top_tok.sum(-1, keepdim=True)),
            "take the softmax over the experts (dim=-1), not over the tokens (dim=0), and renormalise the k "
            "weights": (e_tok, top_tok),
            "route to the k *most* probable experts (torch.topk(k) picks the largest; argsort is ascending)":
                (e_low, low / low.sum(-1, keepdim=True)),
        }
        for hint, (ve, vw) in variants.items():
            if torch.equal(experts, ve) and torch.allclose(w, vw, rtol=1e-5, atol=1e-6):
                fail(number, f"close, but {hint}")
        same_set = torch.equal(experts.sort(-1).values, want_e.sort(-1).values)
        if same_set:
            order = experts.sort(-1).indices
            pairs_ok = torch.equal(experts.gather(-1, order), want_e.gather(-1, want_e.sort(-1).indices)) and \
                torch.allclose(w.gather(-1, order), want_w.gather(-1, want_e.sort(-1).indices), rtol=1e-5, atol=1e-6)
            if pairs_ok:
                fail(number, "right experts and weights, but list them best first (the order torch.topk returns), "
                              "with each weight in the same slot as its expert")
            if torch.allclose(w.sort(-1).values, want_w.sort(-1).values, rtol=1e-5, atol=1e-6):
                fail(number, "right experts and right weights, but not paired: weights[t, j] must be the weight of "
                              "experts[t, j] (take both from the same torch.topk call)")
            fail(number, "right experts, wrong weights: softmax over the E experts, keep the k chosen "
                          "probabilities, divide them by their sum")
        fail(number, "wrong experts: choose, for each token, the k experts with the highest router probability "
                      "(equivalently the k largest logits), softmax over dim=-1")
    E = cases[0][0].shape[1]
    try:
        fn(cases[0][0].clone(), E + 1)
    except NotImplementedError:
        raise
    except ValueError:
        pass
    except Exception as e:
        fail(number, f"with k = {E + 1} > E = {E} experts your function raised {type(e).__name__}: {e}; check k "
                      "first and raise a ValueError with a clear message")
    else:
        fail(number, f"k = {E + 1} is more experts than there are (E = {E}): raise a ValueError instead of "
                      "returning something")
    print(f"Exercise {number} passed: softmax over the experts, the top k best first, weights renormalised to sum "
          "to 1; k > E rejected")
    return True


_PARAM_KEYS = ("n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "vocab", "tied", "n_dense_layers",
               "dense_ffn", "n_experts", "top_k", "n_shared", "expert_ffn")


def _param_count_ref(c: dict, all_active=False, no_shared=False, no_dense=False, dense_as_moe=False, mha=False,
                     lm_head="flag", no_router=False, no_norms=False, embed_active=True) -> tuple[int, int]:
    """Reference of Exercise 1.2; each keyword off its default is one typical mistake."""
    h, L = c["hidden"], c["n_layers"]
    kv = c["n_heads"] if mha else c["n_kv_heads"]
    attention = 2 * h * c["n_heads"] * c["head_dim"] + 2 * h * kv * c["head_dim"]      # W_q, W_o; W_k, W_v
    n_dense = 0 if dense_as_moe else c["n_dense_layers"]
    n_moe = L - n_dense
    dense = 0 if no_dense else n_dense * 3 * h * c["dense_ffn"]
    expert = 3 * h * c["expert_ffn"]
    routed = n_moe * c["n_experts"] * expert
    shared = 0 if no_shared else n_moe * c["n_shared"] * expert
    router = 0 if no_router else n_moe * c["n_experts"] * h
    two = {"flag": not c["tied"], "always": True, "never": False}[lm_head]
    embeddings = c["vocab"] * h * (2 if two else 1)
    norms = 0 if no_norms else (2 * L + 1) * h
    total = embeddings + L * attention + dense + routed + shared + router + norms
    active = total if all_active else total - routed + n_moe * c["top_k"] * expert
    if not embed_active:
        active -= embeddings
    return total, active


def check_param_count(fn: Callable) -> bool:
    """Exercise 1.2: ``fn(cfg) -> (total, active)``, the parameters of a MoE Transformer and how many of them
    one token uses. ``cfg`` is a dict with keys n_layers, hidden,
    n_heads, n_kv_heads, head_dim, vocab, tied (bool), n_dense_layers, dense_ffn, n_experts, top_k, n_shared,
    expert_ffn. The course's convention (that of LLaDA 2.0's "16B-A1B", arXiv 2512.15745, with inclusionAI/dFactory's model configs,
    and :mod:`course_lib.params`):

    - no biases anywhere; every feed-forward network is a SwiGLU, 3 matrices of hidden x ffn;
    - attention per layer: W_q and W_o of hidden x (n_heads * head_dim), W_k and W_v of
      hidden x (n_kv_heads * head_dim) (grouped-query attention);
    - the first ``n_dense_layers`` layers have a dense SwiGLU of size ``dense_ffn``; each of the other
      ``n_layers - n_dense_layers`` (MoE) layers has ``n_experts`` routed experts and ``n_shared`` shared
      experts, all SwiGLUs of size ``expert_ffn``, and a router of hidden x n_experts;
    - RMSNorm: one weight vector of size hidden, two per layer and one final;
    - embedding vocab x hidden, plus an LM head of the same size unless ``tied``;
    - **active** = total minus the routed experts a token does not use: each MoE layer counts ``top_k``
      routed experts instead of ``n_experts``; everything else (embedding and LM head included, as the
      published "A1B" figures do) counts as active.
    """
    number = "1.2"
    configs = [
        dict(n_layers=4, hidden=64, n_heads=4, n_kv_heads=2, head_dim=24, vocab=100, tied=False, n_dense_layers=1,
             dense_ffn=256, n_experts=8, top_k=2, n_shared=1, expert_ffn=32),
        dict(n_layers=6, hidden=96, n_heads=8, n_kv_heads=1, head_dim=16, vocab=300, tied=True, n_dense_layers=2,
             dense_ffn=384, n_experts=16, top_k=4, n_shared=2, expert_ffn=48),
        dict(n_layers=20, hidden=2048, n_heads=16, n_kv_heads=4, head_dim=128, vocab=157_184, tied=False,
             n_dense_layers=1, dense_ffn=5120, n_experts=256, top_k=8, n_shared=1, expert_ffn=512),   # LLaDA2.0-mini
    ]
    got = []
    for c in configs:
        arg = dict(c)
        out = call(number, fn, arg)
        if arg != c:
            fail(number, "do not modify the config dict")
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            fail(number, f"return a tuple (total, active) of two integers, got {type(out).__name__}")
        pair = []
        for v in out:
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                v = v.item()
            if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__index__"):
                fail(number, f"return a tuple (total, active) of two integers, got ({out[0]!r:.40}, {out[1]!r:.40})")
            pair.append(float(v) if isinstance(v, float) else int(v))
        got.append(tuple(pair))
    want = [_param_count_ref(c) for c in configs]
    if got == want:                          # an integral float equals its int (all counts are below 2**53)
        t, a = want[2]
        print(f"Exercise {number} passed: e.g. LLaDA2.0-mini-like config: {t / 1e9:.2f}B total, {a / 1e9:.2f}B "
              f"active ({100 * a / t:.1f}%)")
        return True
    variants = {
        "count only top_k routed experts per MoE layer as active: a token runs through top_k of the n_experts, "
        "not all of them (your active equals your total)": dict(all_active=True),
        "count the shared expert(s): each MoE layer also has n_shared always-on experts of size expert_ffn, in "
        "the total and in the active count": dict(no_shared=True),
        "count the dense layers' feed-forward: the first n_dense_layers layers have a dense SwiGLU of size "
        "dense_ffn (3 * hidden * dense_ffn each)": dict(no_dense=True),
        "the first n_dense_layers layers are dense (a SwiGLU of size dense_ffn, no experts, no router); only the "
        "other n_layers - n_dense_layers layers are MoE layers": dict(dense_as_moe=True),
        "grouped-query attention: W_k and W_v are hidden x (n_kv_heads * head_dim), not hidden x "
        "(n_heads * head_dim)": dict(mha=True),
        "look at cfg['tied']: with tied embeddings the LM head is the embedding matrix (count vocab x hidden "
        "once); untied, count it twice": dict(lm_head="always"),
        "look at cfg['tied']: untied embeddings have a separate LM head of vocab x hidden (count it; with tied "
        "embeddings count the matrix once)": dict(lm_head="never"),
        "count the router: hidden x n_experts per MoE layer (it runs for every token, so it is active too)":
            dict(no_router=True),
        "count the RMSNorm weights: two vectors of size hidden per layer and one final": dict(no_norms=True),
        "by the course's convention (and the published 'A1B' figures) the embedding and the LM head count as "
        "active parameters too": dict(embed_active=False),
    }
    for hint, kw in variants.items():
        if all(gp == _param_count_ref(c, **kw) for gp, c in zip(got, configs)):
            fail(number, f"close, but {hint}")
    for c, gp, w in zip(configs, got, want):
        if gp != w:
            which = ("total and active" if gp[0] != w[0] and gp[1] != w[1] else "total" if gp[0] != w[0]
                     else "active")
            fail(number, f"wrong {which} for cfg = {c}: you returned {gp}, expected {w}. Count per component "
                          "(embeddings, attention, dense FFNs, routed and shared experts, routers, norms) and compare "
                          "with the convention in the docstring")
    fail(number, "wrong counts")   # not reached


def _m2t_t2t_ref(x, probs, mask_id, tau_mask, tau_edit, editable, ge_mask=False, ge_edit=False, edit_same=False,
                 edit_masked=False, edit_tau=None, mask_tau=None, edit_prompt=False, m2t_anywhere=False):
    """Reference of Exercise 5.1 (LLaDA 2.1 eq. 1-2); each keyword off its default is one typical mistake."""
    conf, v = probs.max(-1)
    masked = x == mask_id
    tm = tau_mask if mask_tau is None else mask_tau
    te = tau_edit if edit_tau is None else edit_tau
    m2t = (torch.ones_like(masked) if m2t_anywhere else masked) & ((conf >= tm) if ge_mask else (conf > tm))
    t2t = (torch.ones_like(masked) if edit_prompt else editable) & ((conf >= te) if ge_edit else (conf > te))
    if not edit_masked:
        t2t &= ~masked
    if not edit_same:
        t2t &= x != v
    return m2t, t2t


def _row(V: int, mask_id: int, top: int, p: float) -> list[float]:
    """A probability row with ``p`` on ``top`` and the rest spread evenly over the other non-[MASK] tokens."""
    rest = (1 - p) / (V - 2)
    return [0.0 if i == mask_id else (p if i == top else rest) for i in range(V)]


def check_m2t_t2t_sets(fn: Callable) -> bool:
    """Exercise 5.1: ``fn(x, probs, mask_id, tau_mask, tau_edit, editable) -> (m2t, t2t)``, the two update sets of
    one LLaDA 2.1 decoding step (LLaDA 2.1, arXiv 2602.08676, section 2, eq. 1-2). ``x`` (L,) long the canvas, ``probs``
    (L, V) the model's probabilities at every position, ``editable`` (L,) bool (False on the prompt). With
    v_i = argmax probs[i]: M2T = {i : x_i = [MASK] and p(v_i) > tau_mask}; T2T = {i : editable, x_i not
    [MASK], x_i != v_i and p(v_i) > tau_edit} (strict inequalities). Return two bool tensors of shape (L,)."""
    number = "5.1"
    V, m = 6, 5
    # hand-built: probabilities that are exact binary fractions, some exactly at a threshold
    #        (x,  top, p,      editable)
    rows = [(1, 2, 0.75, False),      # prompt, a confident different token: never edited
            (0, 0, 0.5, False),
            (3, 4, 0.375, False),
            (m, 2, 0.75, True),       # masked, confident: M2T
            (m, 3, 0.5, True),        # masked, p == 0.5 exactly
            (m, 1, 0.375, True),      # masked, between the thresholds
            (1, 2, 0.75, True),       # committed, confident different token: T2T
            (1, 2, 0.375, True),      # committed, different token between the thresholds
            (2, 2, 0.75, True),       # committed, the model agrees: nothing to edit
            (0, 3, 0.25, True),       # committed, different token at p == 0.25 exactly
            (4, 0, 0.875, True),
            (m, 0, 0.25, True)]
    x = torch.tensor([r[0] for r in rows])
    probs = torch.tensor([_row(V, m, r[1], r[2]) for r in rows], dtype=torch.float64)
    editable = torch.tensor([r[3] for r in rows])
    g = torch.Generator().manual_seed(43)
    L2, V2, m2 = 48, 12, 11
    p2 = torch.softmax(3 * torch.randn(L2, V2, generator=g, dtype=torch.float64).index_fill(1, torch.tensor([m2]),
                                                                                            float("-inf")), -1)
    v2 = p2.argmax(-1)
    x2 = not_mask(torch.randint(0, V2 - 1, (L2,), generator=g), m2)
    x2 = torch.where(torch.rand(L2, generator=g) < 0.3, v2, x2)                     # the model often agrees
    x2[10:] = torch.where(torch.rand(L2 - 10, generator=g) < 0.4, m2, x2[10:])
    ed2 = torch.arange(L2) >= 10
    cases = [(x, probs, m, 0.5, 0.25, editable), (x, probs, m, 0.25, 0.5, editable),
             (x2, p2, m2, 0.6, 0.3, ed2), (x2, p2, m2, 0.2, 0.7, ed2)]
    for case in cases:
        xc, pc, mc, tm, te, ed = case
        args = (xc.clone(), pc.clone(), mc, tm, te, ed.clone())
        out = call(number, fn, *args)
        got_m, got_t = _pair_of_tensors(number, out, "m2t, t2t")
        if not (torch.equal(args[0], xc) and torch.equal(args[1], pc) and torch.equal(args[5], ed)):
            fail(number, "do not modify the inputs in place")
        L = len(xc)
        for nm, t in (("m2t", got_m), ("t2t", got_t)):
            if t.shape != (L,) or t.dtype != torch.bool:
                fail(number, f"{nm} must be a bool tensor of shape (L,) = ({L},) (True = in the set), got shape "
                              f"{tuple(t.shape)}, dtype {t.dtype}")
        want_m, want_t = _m2t_t2t_ref(*case)
        if torch.equal(got_m, want_m) and torch.equal(got_t, want_t):
            continue
        variants = {
            "M2T uses a strict inequality, p(v) > tau_mask (LLaDA 2.1 eq. 1): a position exactly at the threshold "
            "is not committed": dict(ge_mask=True),
            "T2T uses a strict inequality, p(v) > tau_edit (eq. 2): a token exactly at the threshold is not "
            "edited": dict(ge_edit=True),
            "M2T and T2T use strict inequalities, p(v) > tau (eq. 1-2)": dict(ge_mask=True, ge_edit=True),
            "T2T only edits a token the model disagrees with: require x_i != v_i (replacing a token by itself is "
            "no edit)": dict(edit_same=True),
            "T2T edits committed tokens only: a [MASK] position belongs to M2T, never to T2T": dict(edit_masked=True),
            "T2T uses its own threshold tau_edit, not tau_mask": dict(edit_tau=tm),
            "M2T uses tau_mask, not tau_edit": dict(mask_tau=te),
            "the two thresholds are swapped: M2T uses tau_mask, T2T uses tau_edit": dict(mask_tau=te, edit_tau=tm),
            "T2T never edits the prompt: restrict it to editable positions": dict(edit_prompt=True),
            "M2T only commits [MASK] positions (x_i == mask_id)": dict(m2t_anywhere=True),
        }
        for hint, kw in variants.items():
            vm, vt = _m2t_t2t_ref(*case, **kw)
            if torch.equal(got_m, vm) and torch.equal(got_t, vt):
                fail(number, f"close, but {hint}")
        if torch.equal(got_m, want_t) and torch.equal(got_t, want_m):
            fail(number, "return (m2t, t2t) in that order")
        if not torch.equal(got_m, want_m):
            pos = torch.nonzero(got_m != want_m).flatten().tolist()
            fail(number, f"wrong M2T set at positions {pos}: M2T = {{i : x_i == mask_id and max_v probs[i, v] > "
                          f"tau_mask}} (here tau_mask = {tm}, tau_edit = {te})")
        pos = torch.nonzero(got_t != want_t).flatten().tolist()
        fail(number, f"wrong T2T set at positions {pos}: T2T = {{i : editable, x_i != mask_id, x_i != v_i, "
                      f"probs[i, v_i] > tau_edit}} with v_i = argmax probs[i] (here tau_mask = {tm}, tau_edit = {te})")
    print(f"Exercise {number} passed: M2T = masked & p(v) > tau_mask; T2T = editable & committed & x != v & "
          "p(v) > tau_edit")
    return True


def _block_mask_ref(L: int, block_size: int, obc_ge=False) -> torch.Tensor:
    """Reference of Exercise 2.1 (BD3-LM ``block_diff_mask``; LLaDA 2.0 eq. 3-4). ``obc_ge``: the leaking
    mistake (>= in the offset block-causal part)."""
    if L % block_size:
        raise ValueError(f"block_size {block_size} must divide L = {L}")
    i = torch.arange(2 * L)
    x0 = i >= L
    b = (i % L) // block_size
    bq, bk, x0q, x0k = b[:, None], b[None], x0[:, None], x0[None]
    bd = (bq == bk) & ~x0q & ~x0k
    obc = ((bq >= bk) if obc_ge else (bq > bk)) & ~x0q & x0k
    bc = (bq >= bk) & x0q & x0k
    return bd | obc | bc


def check_block_mask(fn: Callable) -> bool:
    """Exercise 2.1: ``fn(L, block_size) -> mask`` bool (2L, 2L), the block-diffusion training mask over the
    concatenation ``[x_t ; x_0]`` (BD3-LM, arXiv 2503.09573; LLaDA 2.0, arXiv 2512.15745,
    section 4.2, eq. 3-4). ``mask[i, j]`` is True when query i may attend to key j; with b(k) the block of position k
    within its half: x_t -> x_t block-diagonal (b(i) == b(j)), x_t -> x_0 offset block-causal (b(i) > b(j),
    strict), x_0 -> x_0 block-causal (b(i) >= b(j)), x_0 -> x_t never. A block size that does not divide L
    raises ValueError."""
    number = "2.1"
    for L, bs in ((16, 4), (12, 3), (8, 1), (8, 8), (6, 2)):
        out = call(number, fn, L, bs)
        try:
            got = torch.as_tensor(out)
        except Exception:
            fail(number, f"return a bool tensor of shape (2L, 2L), got {type(out).__name__}")
        if got.shape != (2 * L, 2 * L):
            fail(number, f"for L = {L} the mask covers [x_t ; x_0], shape (2L, 2L) = {(2 * L, 2 * L)}; got "
                          f"{tuple(got.shape)}")
        if got.dtype != torch.bool:
            fail(number, f"return a bool tensor (True = may attend), got dtype {got.dtype}")
        want = _block_mask_ref(L, bs)
        if torch.equal(got, want):
            continue
        at = f" (L = {L}, block_size = {bs})"
        if torch.equal(got, want.T):
            fail(number, f"the mask is transposed{at}: rows are queries, columns keys; mask[i, j] says whether "
                          "query i may attend to key j")
        tt, t0, ot, oo = got[:L, :L], got[:L, L:], got[L:, :L], got[L:, L:]
        b = torch.arange(L) // bs
        same, before, upto = b[:, None] == b[None], b[:, None] > b[None], b[:, None] >= b[None]
        tril = torch.ones(L, L, dtype=torch.bool).tril()
        if ot.any():
            fail(number, f"x_0 must never attend to x_t{at}: the bottom-left quadrant (queries in x_0, keys in x_t) "
                          "must be all False; the clean copy is context, it must not depend on the noise")
        if not torch.equal(t0, before):
            if torch.equal(t0, upto):
                fail(number, f"close, but the offset block-causal part x_t -> x_0 uses a strict b(i) > b(j){at}: with "
                              ">= a noisy block sees its own clean tokens, the very tokens it must predict (the "
                              "answer leaks)")
            if not t0.any():
                fail(number, f"x_t must attend to the clean tokens of earlier blocks (x_t -> x_0: b(i) > b(j)){at}; "
                              "that is the context each block is denoised from. Number the blocks within each half: "
                              "b(k) = (k mod L) // block_size, so x_t and x_0 share block numbers")
            fail(number, f"wrong x_t -> x_0 part (top-right quadrant){at}: offset block-causal, True where "
                          "b(i) > b(j)")
        if not torch.equal(tt, same):
            if torch.equal(tt, tril) or torch.equal(tt, upto):
                fail(number, f"x_t -> x_t is block-diagonal (b(i) == b(j)), not causal{at}: a noisy token sees its "
                              "whole block both ways and no other noisy block (earlier blocks are seen clean, "
                              "through x_0)")
            fail(number, f"wrong x_t -> x_t part (top-left quadrant){at}: block-diagonal, True where b(i) == b(j)")
        if not torch.equal(oo, upto):
            if torch.equal(oo, before):
                fail(number, f"x_0 -> x_0 is block-causal with b(i) >= b(j){at}: a clean token sees its own block too")
            if torch.equal(oo, tril):
                fail(number, f"x_0 -> x_0 is block-causal (b(i) >= b(j)), not token-causal{at}: a clean token sees "
                              "its whole block")
            fail(number, f"wrong x_0 -> x_0 part (bottom-right quadrant){at}: block-causal, True where b(i) >= b(j)")
        fail(number, f"wrong mask{at}")    # not reached: every quadrant was checked
    try:
        fn(10, 4)
    except NotImplementedError:
        raise
    except ValueError:
        pass
    except Exception as e:
        fail(number, f"block_size 4 does not divide L = 10, and your function raised {type(e).__name__}: {e}; "
                      "check L % block_size first and raise a ValueError with a clear message")
    else:
        fail(number, "block_size 4 does not divide L = 10: raise a ValueError instead of returning a mask (the "
                      "blocks would not tile the sequence)")
    print(f"Exercise {number} passed: [x_t ; x_0] mask = block-diagonal | offset block-causal (>) | block-causal (>=), "
          "x_0 never sees x_t")
    return True
