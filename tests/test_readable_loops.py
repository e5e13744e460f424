"""Each chapter shows its main algorithm as a short loop for one sequence (``masked.sample_one``,
``llada.generate_one``, ``decoding.decode_one``); the library runs the same algorithm batched, with more options
(``masked.ancestral_sampler``, ``llada.generate``, ``decoding.threshold_decode`` / ``edit_decode``). These tests
check that the two give the same tokens for the same inputs and seeds, with the shipped models.
"""
import pytest
import torch

from course_lib import arith, ddpm, decoding, editing, llada, masked, textlm


@pytest.fixture(scope="module")
def mdlm():
    return textlm.load_text_model("lm_mdlm")


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mdlm_sample_one_is_the_ancestral_sampler(mdlm, seed, schedule):
    steps = 20 if schedule == "cosine" else 41
    one = masked.sample_one(mdlm, textlm.SEQ_LEN, steps, textlm.MASK_ID, torch.Generator().manual_seed(seed),
                            schedule=schedule)
    batched = ddpm.final(masked.ancestral_sampler(mdlm, textlm.SEQ_LEN, steps, textlm.MASK_ID,
                                                  torch.Generator().manual_seed(seed), schedule=schedule))
    assert one.shape == (textlm.SEQ_LEN,) and (one != textlm.MASK_ID).all(), "every position is unmasked"
    assert torch.equal(one, batched[0])


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("block_length", [38, 19, 2])
def test_llada_generate_one_is_generate(mdlm, temperature, block_length):
    prompts = textlm.language_ids("test")[:3, :3]
    for i, p in enumerate(prompts):
        kw = dict(steps=38, gen_length=38, block_length=block_length, temperature=temperature,
                  mask_id=textlm.MASK_ID)
        one = llada.generate_one(mdlm, p, generator=torch.Generator().manual_seed(i), **kw)
        batched = llada.generate(mdlm, p[None], generator=torch.Generator().manual_seed(i), **kw)
        assert torch.equal(one[:3], p) and not (one == textlm.MASK_ID).any()
        assert torch.equal(one, batched[0]), f"prompt {i}"


def test_llada_generate_one_breaks_ties_like_generate():
    """A model that gives every position the same logits: the order of commits is decided by the tie-breaking
    draws alone, which both loops must take from the generator in the same order."""
    V = 6
    flat = lambda x: torch.zeros(x.shape + (V,)).index_fill_(-1, torch.tensor([3]), 2.0)  # noqa: E731
    p = torch.tensor([4, 5])
    for seed in range(3):
        one = llada.generate_one(flat, p, steps=4, gen_length=8, block_length=8, mask_id=1,
                                 generator=torch.Generator().manual_seed(seed))
        batched = llada.generate(flat, p[None], steps=4, gen_length=8, block_length=8, mask_id=1,
                                 generator=torch.Generator().manual_seed(seed))
        assert torch.equal(one, batched[0])


MODES = [(0.9, None), (0.5, None), (0.5, 0.0), (0.95, 0.9), (0.7, 0.5)]


@pytest.mark.parametrize("tau_mask,tau_edit", MODES)
def test_decode_one_is_the_batched_decoder_on_addition(tau_mask, tau_edit):
    model = arith.load_arith_model("add_edit")
    prompts, _ = arith.to_ids(arith.problems("test")[:300])
    args = (arith.GEN_LENGTH, 4, tau_mask)
    if tau_edit is None:
        res = decoding.threshold_decode(model, prompts, *args, arith.MASK_ID, arith.EOS_ID)
    else:
        res = decoding.edit_decode(model, prompts, *args, tau_edit, arith.MASK_ID, arith.EOS_ID)
    for i, p in enumerate(prompts):
        one = decoding.decode_one(model, p, *args, tau_edit, arith.MASK_ID, arith.EOS_ID)
        assert torch.equal(one, res.x[i, res.prompt_length:]), f"prompt {i}"
    if tau_edit is not None and tau_edit <= 0.5:
        assert res.events["t2t"] > 0, "these editing settings edit a few of the 300 answers"


@pytest.mark.parametrize("tau_mask,tau_edit", [(0.9, None), (0.5, 0.0), (0.95, 0.9)])
def test_decode_one_is_the_batched_decoder_on_free_text(tau_mask, tau_edit):
    """Free text in blocks of 8: answers that end early (an [EOS] block) are filled with [EOS] by both."""
    model = editing.load_editor("lm_edit") if tau_edit is not None else textlm.load_text_model("lm_mdlm_packed")
    prompts = textlm.language_ids("test")[:12, :1]
    args = (40, 8, tau_mask)
    if tau_edit is None:
        res = decoding.threshold_decode(model, prompts, *args, textlm.MASK_ID, textlm.EOS_ID)
    else:
        res = decoding.edit_decode(model, prompts, *args, tau_edit, textlm.MASK_ID, textlm.EOS_ID)
    assert (res.blocks < 5).any(), "some answer should stop at an [EOS] before the last block"
    for i, p in enumerate(prompts):
        one = decoding.decode_one(model, p, *args, tau_edit, textlm.MASK_ID, textlm.EOS_ID)
        assert torch.equal(one, res.x[i, 1:]), f"prompt {i}"
