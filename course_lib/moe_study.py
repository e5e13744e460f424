"""Routing statistics of the mixture-of-experts models (chapter 4) and the chapter's MoE numbers.

Which experts do the trained models use, for which word classes, and how balanced is the load? The functions read
the routing that :class:`course_lib.moe.MoEFeedForward` records on every forward pass.
``python -m course_lib.moe_study --write`` writes ``data/moe/results.json`` from the shipped MoE models (dense
and MoE at equal active parameters: their validation bounds, compared sentence by sentence, and their loads).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from . import language, masked
from .checkpoints import read_manifest
from .moe import expert_load
from .runtime import progress
from .textlm import EOS_ID, counted_tokens, language_ids, load_text_model, mdlm_nelbo_terms, nll_summary, pack_canvases
from .tokenizer import EOS, MASK, PAD, Tokenizer

RESULTS = Path(__file__).resolve().parent.parent / "data" / "moe" / "results.json"
MOE_RECIPES = ("moe_dense", "moe_switch", "moe_switch_nobal", "moe_llada2")


def word_class_map(tokenizer=None) -> tuple[list[str], torch.Tensor]:
    """``(classes, class_of)``: the word classes of the course language and a (vocab_size,) long tensor
    mapping each token id to its class index.

    Classes come from :mod:`course_lib.language`'s word lists: nouns (singular and plural), names, verbs
    (intransitive and transitive, every form), adjectives, adverbs, prepositions, determiners,
    conjunctions, wh-words (where/when/why/how/who/what/which; "which" also opens relative clauses),
    auxiliaries (does/do/is/are/be), other function words (that/please), punctuation, then the
    specials [EOS], [PAD] and [MASK]. Every token of ``tokenizer`` (default
    :meth:`Tokenizer.for_language`) must fall in exactly one class."""
    tok = tokenizer or Tokenizer.for_language()
    groups = {
        "noun": [w for pair in language.NOUNS for w in pair],
        "name": list(language.NAMES),
        "verb": [w for pair in language.INTRANSITIVE + language.TRANSITIVE for w in pair],
        "adjective": list(language.ADJECTIVES),
        "adverb": list(language.ADVERBS),
        "preposition": list(language.PREPOSITIONS),
        "determiner": list(language.DET_SG) + list(language.DET_PL),
        "conjunction": list(language.CONJUNCTIONS),
        "wh-word": list(language.WH_ADVERBS) + ["who", "what", "which"],
        "auxiliary": ["does", "do", "is", "are", "be"],
        "other function word": ["that", "please"],
        "punctuation": [".", "?", ","],
        "[EOS]": [EOS], "[PAD]": [PAD], "[MASK]": [MASK],
    }
    classes = list(groups)
    owner: dict[str, str] = {}
    for name, words in groups.items():
        for w in words:
            if owner.setdefault(w, name) != name:
                raise ValueError(f"word {w!r} is in two classes: {owner[w]!r} and {name!r}")
    missing = [t for t in tok.itos if t not in owner]
    if missing:
        raise ValueError(f"tokens without a word class: {missing[:10]} (is this the course language's tokenizer?)")
    class_of = torch.tensor([classes.index(owner[t]) for t in tok.itos], dtype=torch.long)
    return classes, class_of


@torch.no_grad()
def collect_routing(model, ids: torch.Tensor, batch_size: int = 256, show_progress: bool = False) -> list:
    """For each MoE block of ``model``, the (N * L, k) experts chosen for every position of ``ids`` (N, L).

    Runs the model in eval mode (its bias is not touched) in batches;
    row ``n * L + j`` belongs to position j of sentence n."""
    layers = model.moe_layers()
    if not layers:
        raise ValueError("the model has no mixture-of-experts layers (config.n_experts = 0)")
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.ndim != 2 or ids.shape[0] < 1:
        raise ValueError(f"ids must be an (N, L) long tensor, got {getattr(ids, 'dtype', type(ids))} "
                         f"{tuple(getattr(ids, 'shape', ()))}")
    if int(ids.min()) < 0 or int(ids.max()) >= model.config.vocab_size:
        raise ValueError(f"token ids must lie in [0, {model.config.vocab_size})")
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = [[] for _ in layers]
    starts = range(0, len(ids), batch_size)
    for s in (progress(starts, desc="routing") if show_progress else starts):
        model(ids[s:s + batch_size].to(dev))
        for j, (_, m) in enumerate(layers):
            out[j].append(m.last_routing.experts.cpu())
    model.train(was)
    return [torch.cat(o) for o in out]


def load_fractions(model, ids: torch.Tensor, keep: torch.Tensor | None = None, batch_size: int = 256) -> torch.Tensor:
    """(n_moe_layers, E): the fraction of token-assignments each expert receives on ``ids`` (rows sum to 1;
    perfect balance is 1/E everywhere).

    ``keep``: optional (N, L) bool, the positions to count (e.g. ``x0 != PAD`` to leave out the padding of
    the canvas, which a model still routes); default all."""
    layers = model.moe_layers()
    routing = collect_routing(model, ids, batch_size)
    if keep is not None:
        if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool or keep.shape != ids.shape:
            raise ValueError(f"keep must be a bool tensor of shape {tuple(ids.shape)}")
        if not keep.any():
            raise ValueError("keep selects no position")
        routing = [r[keep.reshape(-1).cpu()] for r in routing]
    E = layers[0][1].n_experts
    return torch.stack([expert_load(r, E).double() / r.numel() for r in routing])


def max_min_ratio(fractions: torch.Tensor) -> list:
    """Per layer, the busiest expert's load over the idlest one's (1 = perfect balance; inf if an expert
    is never chosen)."""
    return [float(row.max() / row.min()) if row.min() > 0 else math.inf for row in fractions]


def class_expert_counts(model, ids: torch.Tensor, class_of: torch.Tensor, n_classes: int | None = None,
                        batch_size: int = 256) -> torch.Tensor:
    """(n_moe_layers, C, E) counts: how often a position whose *input* token has class c is sent to expert e
    (each position counts k times, once per chosen expert).

    ``class_of``: (vocab_size,) long tensor from :func:`word_class_map`; normalise each row to read
    "where does this word class go"."""
    V = model.config.vocab_size
    if not isinstance(class_of, torch.Tensor) or class_of.dtype != torch.long or class_of.shape != (V,):
        raise ValueError(f"class_of must be a ({model.config.vocab_size},) long tensor")
    C = int(class_of.max()) + 1 if n_classes is None else n_classes
    if int(class_of.min()) < 0 or int(class_of.max()) >= C:
        raise ValueError(f"class indices must lie in [0, {C})")
    E = model.moe_layers()[0][1].n_experts if model.moe_layers() else 0
    routing = collect_routing(model, ids, batch_size)
    cls = class_of[ids.reshape(-1)]                                                  # (N * L,)
    out = []
    for r in routing:
        pair = cls[:, None] * E + r                                                  # (N * L, k)
        out.append(torch.bincount(pair.reshape(-1), minlength=C * E).view(C, E))
    return torch.stack(out)


# ----------------------------------------------------------------------------------------------
# The chapter's numbers: data/moe/results.json
# ----------------------------------------------------------------------------------------------

def mdlm_inputs(ids: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The validation canvases as the MDLM denoiser sees them in training: each sentence masked at its own
    time t (one per stratum of [0, 1], linear schedule), seeded."""
    g = torch.Generator().manual_seed(seed)
    t = masked.sample_times(len(ids), g)
    return masked.forward_mask(ids, t, "linear", Tokenizer.mask_id, g)[0]


@torch.no_grad()
def nelbo_per_sentence(model, ids: torch.Tensor, samples: int = 8, seed: int = 0) -> torch.Tensor:
    """(N, samples) MDLM NELBO terms in nats per sentence: the draws of :func:`course_lib.textlm.mdlm_nelbo`
    (same seed, same times and masks, linear schedule) kept per sentence, so that two models evaluated with the
    same seed can be compared sentence by sentence (a paired difference)."""
    return mdlm_nelbo_terms(model, ids, "linear", samples, seed)


def paired_difference(a: torch.Tensor, b: torch.Tensor, tokens: torch.Tensor) -> tuple[float, float]:
    """``(d, se)``: the difference of two per-token bounds ``sum(a) / sum(tokens) - sum(b) / sum(tokens)`` from
    per-sentence values ``a``, ``b`` (N,), and its standard error over sentences (delta method, as
    :func:`course_lib.language.entropy_per_token`)."""
    if a.shape != b.shape or a.shape != tokens.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError("a, b and tokens must be (N,) tensors with N >= 2")
    d, n = (a - b).double(), tokens.double()
    mean = float(d.sum() / n.sum())
    return mean, float((d - mean * n).std() * math.sqrt(len(d)) / n.sum())


def chapter_results(names=MOE_RECIPES, n_canvases: int = 500, samples: int = 8) -> dict:
    """Metrics of the shipped MoE recipes for chapter 4: validation NELBO (on ``n_canvases`` packed validation
    canvases, as the models were trained, ``samples`` Monte-Carlo draws, the same masks for every model) and its
    paired difference to the first model (``moe_dense``), the recipe's own 500-canvas value from the manifest,
    per-layer load fractions and max/min load ratios, and the class-by-expert count matrices, all on
    :func:`mdlm_inputs` of the validation canvases."""
    valid = pack_canvases(language_ids("valid"), n_canvases, seed=1)     # the recipes' validation canvases
    inputs = mdlm_inputs(valid)
    classes, class_of = word_class_map()
    manifest = read_manifest()
    out = {"inputs": f"{len(valid)} packed validation canvases (sentences joined by [EOS], no [PAD]), each masked "
                     "at its own t (stratified, linear schedule, seed 0): the denoiser's training distribution; a "
                     "position's class is its input token's ([MASK] for masked positions). load_fractions count "
                     "every position (every one is a real token), load_fractions_words only positions whose clean "
                     "token is a word (not [EOS]); a max/min load ratio of null means some expert was never chosen "
                     "(infinite ratio)",
           "nelbo_samples": samples, "classes": classes, "models": {}}
    tokens, first = counted_tokens(valid), None
    for name in names:
        model = load_text_model(name)
        per = nelbo_per_sentence(model, valid, samples, seed=0)          # = textlm.mdlm_nelbo's draws
        res = nll_summary(per, tokens)
        first = per.mean(1) if first is None else first
        diff, diff_se = paired_difference(per.mean(1), first, tokens)
        entry = {"valid_nelbo": round(res.nll, 4), "valid_nelbo_mc_se": round(res.se, 4),
                 f"valid_nelbo_minus_{names[0]}": round(diff, 4),
                 f"valid_nelbo_minus_{names[0]}_se": round(diff_se, 4),
                 "valid_nelbo_500_manifest": manifest[name]["metrics"].get("valid_nll_500"),
                 "train_seconds": manifest[name]["train_seconds"], "n_params": model.n_params(),
                 "config": {k: v for k, v in model.config.to_dict().items()
                            if k in ("d_ff", "n_experts", "moe_top_k", "n_shared_experts", "d_expert", "router",
                                     "n_dense_layers", "n_group", "topk_group", "routed_scaling",
                                     "bias_update_rate", "aux_loss_coef")}}
        if model.moe_layers():
            entry["moe_layers"] = [i for i, _ in model.moe_layers()]
            for suffix, keep in (("", None), ("_words", valid != EOS_ID)):       # all positions; words only
                frac = load_fractions(model, inputs, keep)
                entry["load_fractions" + suffix] = [[round(float(v), 5) for v in row] for row in frac]
                entry["max_min_load_ratio" + suffix] = [round(v, 3) if math.isfinite(v) else None   # None: an
                                                        for v in max_min_ratio(frac)]               # idle expert
            entry["class_expert_counts"] = class_expert_counts(model, inputs, class_of, len(classes)).tolist()
            if model.moe_layers()[0][1].expert_bias is not None:
                entry["expert_bias"] = [[round(float(v), 4) for v in m.expert_bias] for _, m in model.moe_layers()]
        out["models"][name] = entry
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m course_lib.moe_study", description="chapter 4 MoE results")
    p.add_argument("--write", action="store_true", help=f"write {RESULTS}")
    a = p.parse_args(argv)
    torch.set_num_threads(1)            # as the recipes: the same numbers on any machine
    res = chapter_results()
    for name, e in res["models"].items():
        print(f"{name:18s} NELBO {e['valid_nelbo']:.4f} +- {e['valid_nelbo_mc_se']:.4f} (vs dense "
              f"{e['valid_nelbo_minus_moe_dense']:+.4f} +- {e['valid_nelbo_minus_moe_dense_se']:.4f})  "
              f"max/min load {e.get('max_min_load_ratio')} (words only {e.get('max_min_load_ratio_words')})")
    if a.write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(res, indent=1) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
