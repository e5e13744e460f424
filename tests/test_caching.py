"""Key-value caches (course_lib.nn.KVCache, Transformer.forward_cached) and the cached decoders (course_lib.caching):
the exact caches give the same tokens as decoding without them; the approximate ones (Fast-dLLM's prefix and dual
caches) agree where they must; the bookkeeping (tokens, forwards, positions, commits) counts what was computed.
No wall-clock time is asserted here: speeds come from ``./course bench decoding``."""
import pytest
import torch

from course_lib import blockdiff, caching, decoding, copy_task, textlm
from course_lib.nn import KVCache, Transformer, TransformerConfig

V, MASK, EOS = 12, 1, 2


def _model(attention="bidirectional", block_size=None, seed=0, seq_len=32):
    torch.manual_seed(seed)
    m = Transformer(TransformerConfig(vocab_size=V, seq_len=seq_len, n_layer=2, n_head=2, d_model=32,
                                      attention=attention, block_size=block_size))
    # sharpen the random model a little so that some confidences pass a threshold
    with torch.no_grad():
        m.lm_head.weight.mul_(40)
    return m.eval()


def _prompts(B=16, P=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, V, (B, P), generator=g)


def _answer(r, i):
    """Row i's answer up to and including its first [EOS] (what the decoders count and grade)."""
    return r.x[i, r.prompt_length:r.prompt_length + int(r.tokens[i])].tolist()


# ------------------------------------------------------------------------------- forward_cached
def test_incremental_causal_pass_equals_full_pass():
    m = _model("causal")
    x = _prompts(4, 20)
    full = m(x)
    logits, cache = m.forward_cached(x[:, :6], torch.arange(6), None, torch.ones(6, 6, dtype=torch.bool).tril()[None])
    out = [logits]
    for i in range(6, 20):
        step, new = m.forward_cached(x[:, i:i + 1], torch.tensor([i]), cache)
        cache = cache.cat(new)
        out.append(step)
    assert cache.length == 20
    torch.testing.assert_close(torch.cat(out, 1), full, atol=1e-5, rtol=1e-5)


def test_cached_prefix_and_suffix_reproduce_the_full_pass_when_nothing_changed():
    m = _model()
    x = _prompts(3, 24)
    full, kv = m.forward_cached(x, torch.arange(24))
    torch.testing.assert_close(full, m(x), atol=1e-5, rtol=1e-5)
    past = kv.positions(0, 8).cat(kv.positions(16, 24))       # the dual cache of block 8..15
    block, new = m.forward_cached(x[:, 8:16], torch.arange(8, 16), past)
    torch.testing.assert_close(block, full[:, 8:16], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(new.k[0], kv.k[0][:, :, 8:16], atol=1e-5, rtol=1e-5)


def test_a_stale_prefix_cache_is_an_approximation_in_a_bidirectional_model():
    m = _model()
    x = _prompts(2, 24)
    _, kv = m.forward_cached(x, torch.arange(24))
    y = x.clone()
    y[:, 8:16] = (y[:, 8:16] + 1) % V                           # the block changes after the cache was taken
    stale = m.forward_cached(y[:, 8:], torch.arange(8, 24), kv.positions(0, 8))[0]
    assert (stale - m(y)[:, 8:]).abs().max() > 1e-3


def test_kv_cache_rows_and_positions():
    m = _model()
    _, kv = m.forward_cached(_prompts(5, 10), torch.arange(10))
    assert isinstance(kv, KVCache) and kv.length == 10 and len(kv.k) == 2
    sub = kv.rows(torch.tensor([4, 1]))
    assert sub.k[1].shape == (2, 2, 10, 16) and torch.equal(sub.v[0][1], kv.v[0][1])
    assert kv.positions(3, 7).length == 4 and kv.positions(0, 3).cat(kv.positions(3, 10)).length == 10


@pytest.mark.parametrize("kwargs, match", [
    (dict(positions=torch.arange(5)), "positions must be"),
    (dict(positions=torch.arange(40, 46)), "positions must lie"),
    (dict(mask=torch.ones(1, 6, 5, dtype=torch.bool)), "mask must be"),
    (dict(mask=torch.ones(1, 6, 6)), "mask must be"),
])
def test_forward_cached_rejects_bad_arguments(kwargs, match):
    m = _model()
    args = dict(idx=_prompts(2, 6), positions=torch.arange(6), past=None, mask=None) | kwargs
    with pytest.raises(ValueError, match=match):
        m.forward_cached(**args)


def test_forward_cached_rejects_a_cache_of_other_rows():
    m = _model()
    _, kv = m.forward_cached(_prompts(3, 6), torch.arange(6))
    with pytest.raises(ValueError, match="past must hold"):
        m.forward_cached(_prompts(2, 2), torch.arange(6, 8), kv)


# ------------------------------------------------------------------------------- autoregressive
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_ar_with_and_without_cache_same_tokens_random_model(temperature):
    m = _model("causal")
    p = _prompts(24, 6)
    a = caching.ar_decode(m, p, 20, EOS, cache=True, temperature=temperature, generator=torch.Generator().manual_seed(1),
                          banned=(0, MASK))
    b = caching.ar_decode(m, p, 20, EOS, cache=False, temperature=temperature,
                          generator=torch.Generator().manual_seed(1), banned=(0, MASK))
    assert torch.equal(a.x, b.x) and torch.equal(a.tokens, b.tokens) and torch.equal(a.forwards, b.forwards)
    assert torch.equal(a.forwards, a.tokens)                                  # one token per forward pass
    # positions: the prefill (P) then one per step; without the cache the whole sequence every step
    assert torch.equal(a.positions, 6 + a.tokens - 1)
    n = b.tokens
    assert torch.equal(b.positions, n * 6 + n * (n - 1) // 2)


def test_ar_with_and_without_cache_same_tokens_shipped_model():
    m = textlm.load_text_model("lm_ar")
    p = torch.full((64, 1), EOS)                                               # [EOS] is lm_ar's BOS
    kw = dict(temperature=1.0, banned=(0, 1))
    a = caching.ar_decode(m, p, 40, EOS, cache=True, generator=torch.Generator().manual_seed(0), **kw)
    b = caching.ar_decode(m, p, 40, EOS, cache=False, generator=torch.Generator().manual_seed(0), **kw)
    assert torch.equal(a.x, b.x)
    assert (a.positions < b.positions).any()


# ------------------------------------------------------------------------------- masked diffusion
@pytest.mark.parametrize("threshold", [0.0, 0.6, 1.0])
def test_uncached_diffusion_decode_is_threshold_decode(threshold):
    m = _model()
    p = _prompts(16, 8)
    ref = decoding.threshold_decode(m, p, 24, 8, threshold, MASK, EOS)
    r = caching.diffusion_decode(m, p, 24, 8, threshold, MASK, EOS, cache=None)
    assert torch.equal(ref.tokens, r.tokens) and torch.equal(ref.forwards, r.forwards)
    assert all(_answer(ref, i) == _answer(r, i) for i in range(16))
    assert torch.equal(r.positions, r.forwards * 32)                        # every call: the whole canvas


def test_threshold_one_commits_one_token_per_step():
    m = _model()
    r = caching.diffusion_decode(m, _prompts(8, 8), 24, 8, 1.0, MASK, EOS)
    assert int((r.commits > 0).sum()) == int(r.forwards.sum())             # every call wrote exactly one token


def test_prefix_and_dual_equal_uncached_when_each_block_takes_one_step():
    m = _model()
    p = _prompts(16, 8)
    ref = caching.diffusion_decode(m, p, 24, 8, 0.0, MASK, EOS, cache=None)
    for cache in ("prefix", "dual"):
        r = caching.diffusion_decode(m, p, 24, 8, 0.0, MASK, EOS, cache=cache)
        assert torch.equal(r.x, ref.x) and torch.equal(r.forwards, ref.forwards)


def test_prefix_and_dual_positions_bookkeeping():
    m = _model()
    p = _prompts(12, 8)
    none = caching.diffusion_decode(m, p, 24, 8, 0.7, MASK, EOS, cache=None)
    for cache in ("prefix", "dual"):
        r = caching.diffusion_decode(m, p, 24, 8, 0.7, MASK, EOS, cache=cache)
        # the first call of every block decoded is a full pass (32 positions)
        blocks = (r.commits.view(12, 3, 8).amax(2) > 0).sum(1)
        later = r.forwards - blocks
        if cache == "dual":
            assert torch.equal(r.positions, blocks * 32 + later * 8)
        else:
            assert (r.positions > blocks * 32 + later * 8).all() or (later == 0).all()
        assert (r.positions <= r.forwards * 32).all()
    assert torch.equal(none.positions, none.forwards * 32)


def test_dual_cache_decoder_on_shipped_mdm_runs_and_counts():
    m = textlm.load_text_model("lm_mdlm_packed")
    p = torch.zeros((16, 0), dtype=torch.long)
    r = caching.diffusion_decode(m, p, 40, 8, 0.9, 1, EOS, cache="dual", temperature=1.0,
                                 generator=torch.Generator().manual_seed(0), banned=(0,))
    s = r.summary()
    assert s["tokens"] == int(r.tokens.sum()) and 0 < s["tpf"] and s["model_calls"] == len(r.times)
    assert all(b >= a for a, b in zip(r.times, r.times[1:]))
    # every counted answer token was committed by one of the row's calls
    for i in range(16):
        c = r.commits[i, :int(r.tokens[i])]
        assert (c > 0).all() and int(c.max()) <= len(r.times)


# ------------------------------------------------------------------------------- block diffusion
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_block_diffusion_exact_cache_same_tokens(temperature):
    m = _model("block_causal", block_size=8)
    p = _prompts(16, 8)
    kw = dict(temperature=temperature)
    a = caching.block_decode(m, p, 24, 8, 0.6, MASK, EOS, cache=True, generator=torch.Generator().manual_seed(2), **kw)
    b = caching.block_decode(m, p, 24, 8, 0.6, MASK, EOS, cache=False, generator=torch.Generator().manual_seed(2), **kw)
    assert torch.equal(a.x, b.x) and torch.equal(a.forwards, b.forwards)
    assert (a.positions < b.positions).all()


def test_block_diffusion_exact_cache_next_token_aligned_shipped_model():
    m = blockdiff.load_bd_model("a2d_convert")
    p = torch.zeros((24, 0), dtype=torch.long)
    kw = dict(temperature=1.0, banned=(0,))
    a = caching.block_decode(m, p, 40, 4, 0.9, 1, EOS, cache=True, generator=torch.Generator().manual_seed(4), **kw)
    b = caching.block_decode(m, p, 40, 4, 0.9, 1, EOS, cache=False, generator=torch.Generator().manual_seed(4), **kw)
    assert torch.equal(a.x, b.x)


def test_block_decode_uncached_matches_threshold_decode_with_the_inference_mask():
    m = _model("block_causal", block_size=8)
    p = _prompts(12, 8)
    ref = decoding.threshold_decode(blockdiff.block_logits_fn(m, 8, 8), p, 24, 8, 0.6, MASK, EOS)
    r = caching.block_decode(m, p, 24, 8, 0.6, MASK, EOS, cache=False)
    assert torch.equal(ref.forwards, r.forwards) and all(_answer(ref, i) == _answer(r, i) for i in range(12))


# ------------------------------------------------------------------------------- argument checks
@pytest.mark.parametrize("call, match", [
    (lambda: caching.ar_decode(_model(), _prompts(2, 4), 8, EOS), "causal"),
    (lambda: caching.diffusion_decode(_model("causal"), _prompts(2, 4), 8, 4, 0.5, MASK, EOS), "bidirectional"),
    (lambda: caching.block_decode(_model(), _prompts(2, 4), 8, 4, 0.5, MASK, EOS), "block-causal"),
    (lambda: caching.diffusion_decode(_model(), _prompts(2, 4), 8, 3, 0.5, MASK, EOS), "divide"),
    (lambda: caching.diffusion_decode(_model(), _prompts(2, 4), 8, 4, 1.5, MASK, EOS), "threshold"),
    (lambda: caching.diffusion_decode(_model(), _prompts(2, 4), 8, 4, 0.5, MASK, EOS, cache="full"), "cache"),
    (lambda: caching.diffusion_decode(_model(), _prompts(2, 4), 40, 4, 0.5, MASK, EOS), "exceeds"),
    (lambda: caching.diffusion_decode(_model(), _prompts(2, 4), 8, 4, 0.5, 99, EOS), "vocabulary"),
    (lambda: caching.ar_decode(_model("causal").train(), _prompts(2, 4), 8, EOS), "eval"),
    (lambda: caching.ar_decode(_model("causal"), torch.zeros((2, 0), dtype=torch.long), 8, EOS), "BOS"),
])
def test_decoders_reject_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_commit_mask_strict_threshold_and_fallback():
    masked = torch.tensor([[True, True, False], [True, True, True]])
    conf = torch.tensor([[1.0, 1.0, 1.0], [0.2, 0.95, 0.97]], dtype=torch.float64)
    m = decoding.commit_mask(masked, conf, 1.0)
    assert m.tolist() == [[True, False, False], [False, False, True]]      # ties at 1.0: one (the leftmost)
    assert decoding.commit_mask(masked, conf, 0.9).tolist() == [[True, True, False], [False, True, True]]


# ------------------------------------------------------------------------------- the long-answer task
def test_copy_task_layout_and_grader():
    p, a = copy_task.problems(200, 0)
    assert p.shape == a.shape == (200, 32)
    n = (p > copy_task.SEP_ID).sum(1)
    assert n.min() >= 16 and n.max() <= 31
    for i in range(20):
        k = int(n[i])
        assert p[i, k] == copy_task.SEP_ID and (p[i, k + 1:] == copy_task.PAD_ID).all()
        assert a[i, :k].tolist() == p[i, :k].tolist() and (a[i, k:] == copy_task.EOS_ID).all()
    assert copy_task.grade(a, a).all()
    wrong = a.clone()
    wrong[:, 0] = 4 + (wrong[:, 0] - 3) % 24                                # another symbol
    assert not copy_task.grade(wrong, a).any()
    no_eos = a.clone()
    no_eos[no_eos == copy_task.EOS_ID] = 4
    assert not copy_task.grade(no_eos, a).any()
    late = a.clone()
    late[a == copy_task.EOS_ID] = 5                                          # whatever comes after [EOS] is ignored
    late[torch.arange(200), n] = copy_task.EOS_ID
    assert copy_task.grade(late, a).all()
    assert torch.equal(copy_task.problems(200, 0)[0], p) and not torch.equal(copy_task.problems(200, 1)[0], p)


# ------------------------------------------------------------------------------- the benchmark's bookkeeping
from course_lib import speed  # noqa: E402


def test_copy_models_differ_only_in_attention_and_objective():
    recipes = copy_task.RECIPES
    assert set(recipes) == {"copy_ar", "copy_mdm", "copy_bd"}
    strip = [{k: v for k, v in r.items() if k not in ("attention", "objective", "block_size")} for r in recipes.values()]
    assert all(s == strip[0] for s in strip)
    models = [copy_task.build_model(n) for n in recipes]
    assert len({m.n_params() for m in models}) == 1                        # one size
    assert len({copy_task.recipe_hash(n) for n in recipes}) == 3


def test_stored_benchmark_is_complete_and_consistent():
    res = speed.load_results()
    speed.check_results(res)
    assert set(res["tasks"]) == {"copy", "text"} and res["protocol"]["runs"] >= 5 and res["protocol"]["n_eval"] >= 1000
    assert {"cpu", "cores", "torch"} <= set(res["machine"])
    for task in res["tasks"]:
        for batch in (1, res["protocol"]["large_batch"]):
            rows = speed.table_rows(res, task, batch)
            assert next(r for r in rows if r["decoder"] == "ar_kv")["speedup"] == 1.0
            for r in rows:
                assert r["n_eval"] == res["protocol"]["n_eval"]
                assert abs(r["tokens_per_second"] - sorted(r["tokens_per_second_runs"])[2]) < 0.1   # the median
    # the race: every decoder's answer to the race prompt is the copied list, and its calls are timed in order
    _, answers = copy_task.problems(1, 0)
    n = int((answers[0] == copy_task.EOS_ID).long().argmax()) + 1
    for key, tr in res["race"]["decoders"].items():
        assert tr["tokens"] == answers[0, :n].tolist(), key
        assert max(tr["commit_call"]) <= len(tr["call_ms"]) and tr["call_ms"] == sorted(tr["call_ms"])
    cost = res["call_cost_ms"]
    assert [int(k) for k in cost] == sorted(int(k) for k in cost) and all(v > 0 for v in cost.values())


@pytest.mark.parametrize("damage, match", [
    (lambda r: r["rows"].pop(), "decoders"),
    (lambda r: r["rows"][0].update(tpf=r["rows"][0]["tpf"] * 2), "inconsistent"),
    (lambda r: next(x for x in r["rows"] if x["decoder"] == "dual").update(positions_per_token=1e6),
     "more positions"),
    (lambda r: next(x for x in r["rows"] if x["decoder"] == "ar_kv").update(forwards_per_token=0.5, tpf=2.0),
     "one forward per token"),
])
def test_check_results_rejects_a_damaged_benchmark(damage, match):
    import copy as copy_module
    res = copy_module.deepcopy(speed.load_results())
    damage(res)
    with pytest.raises(ValueError, match=match):
        speed.check_results(res)


def test_a_tiny_benchmark_run_fills_every_row(tmp_path):
    """The measuring code end to end, tiny (one run, a handful of samples): every decoder at both batch sizes, and
    the bookkeeping holds. (Its times are not looked at.)"""
    res = speed.run(tasks=("text",), path=tmp_path / "b.json", parts=("table",), show_progress=False,
                    runs=1, batch1=1, large=2, n_eval=2)
    speed.check_results(res)
    assert {r["decoder"] for r in res["rows"]} == {d.key for d in speed.decoders(speed.TASKS["text"], {
        "AR": None, "MDM": None, "BD": None})}
    with pytest.raises(ValueError, match="unknown parts"):
        speed.run(tasks=("text",), path=tmp_path / "c.json", parts=("tables",))


def test_cache_error_measures_the_cached_steps_only():
    m = _model()
    p = _prompts(8, 8)
    for cache in ("prefix", "dual"):
        e = speed.cache_error(m, p, 24, 8, cache, threshold=1.0)       # one token per step: 7 cached steps a block
        assert e["cached_steps"] > 0 and e["max_abs_logit_change"] > 0 and 0 <= e["argmax_changed"] <= 1
    assert speed.cache_error(m, p, 24, 8, "dual", threshold=0.0)["cached_steps"] == 0   # one pass per block
