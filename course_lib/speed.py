"""Chapter 4's speed benchmark: autoregressive decoding with a KV cache against every diffusion decoder, in
wall-clock tokens per second, on two tasks and at two batch sizes.

Run it with ``./course bench decoding`` on an idle machine; it writes ``data/bench/decoding.json`` (with the
machine it ran on), which the chapter shows. Timings are never asserted by the tests (a loaded machine would fail
them); the tests check the bookkeeping.

The two tasks (:data:`TASKS`):

- ``copy``: :mod:`course_lib.copy_task`, a long answer with a single right one, decoded greedily and graded
  exactly; three models of one size trained the same way: AR, masked diffusion (MDM) and block diffusion (BD);
- ``text``: free text in the course language, sampled at temperature 1 and judged by the exact validator: chapter
  2's AR model ``lm_ar``, its packed MDLM ``lm_mdlm_packed`` and the block-diffusion model converted from ``lm_ar``
  (``a2d_convert``, blocks of 4), all three of one size (0.88M parameters).

The protocol. Every decoder is warmed up once. At **batch 1** each of :data:`BATCH1_PROMPTS` prompts is decoded
alone; at the **large batch** :data:`LARGE_BATCH` prompts are decoded at once. Each timed run is repeated
:data:`RUNS` times, decoders interleaved run by run (so drift in the machine's speed hits them all), and the median
tokens per second is kept. Accuracy (validity for text) comes from :data:`N_EVAL` prompts decoded in batches of
:data:`LARGE_BATCH`. A token counts up to and including the first [EOS], as for tokens per forward (TPF).
"""
from __future__ import annotations

import json
import math
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, NamedTuple

import torch

from . import blockdiff, caching, language, copy_task, textlm
from .runtime import machine, progress
from .tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "data" / "bench" / "decoding.json"
RUNS = 5
BATCH1_PROMPTS = 20
LARGE_BATCH = 250
N_EVAL = 1000
THRESHOLD = 0.9
THREADS = 2
# the cache-error measurement: (prompts, threshold) per task; copying one token per step, where the caches are used
CACHE_ERROR = {"copy": (100, 1.0), "text": (64, THRESHOLD)}
PAD, MASK, EOS = 0, 1, 2                   # the same ids in the course tokenizer and the copying task


class Decoder(NamedTuple):
    """One row of the benchmark: ``run(prompts, generator) -> SpeedResult``."""
    key: str
    label: str
    family: str                  # "AR", "MDM" or "BD": which of the task's three models it decodes
    run: Callable


class Task(NamedTuple):
    key: str
    title: str
    models: dict                 # family -> model name
    gen_length: int
    blocks: dict                 # family -> block length of the diffusion decoders
    temperature: float
    prompts: Callable            # n -> (prompts (n, P), reference or None)
    correct: Callable            # (answers (n, G), reference) -> (n,) bool


def _copy_prompts(n):
    return copy_task.problems(n, 0)


def _valid_text(answers, reference=None):
    tok = Tokenizer.for_language()
    return torch.tensor([language.is_valid(s) if s is not None else False
                         for s in textlm.to_sentences(answers, tok)])


TASKS = {
    "copy": Task("copy", "copy a list of 16-31 symbols (greedy, exact grader)",
                    {"AR": "copy_ar", "MDM": "copy_mdm", "BD": "copy_bd"}, copy_task.GEN_LENGTH,
                    {"MDM": copy_task.BLOCK, "BD": copy_task.BLOCK}, 0.0, _copy_prompts,
                    lambda answers, ref: copy_task.grade(answers, ref)),
    "text": Task("text", "free text in the course language (temperature 1, exact validator)",
                 {"AR": "lm_ar", "MDM": "lm_mdlm_packed", "BD": "a2d_convert"}, 40, {"MDM": 8, "BD": 4}, 1.0,
                 lambda n: (torch.zeros((n, 0), dtype=torch.long), None), _valid_text),
}


def load_models(task: Task, show_progress: bool = True) -> tuple[dict, dict]:
    """``({family: model}, {family: info})``; the copying models are trained on first use (see
    :func:`course_lib.copy_task.load_or_train`)."""
    models, info = {}, {}
    for family, name in task.models.items():
        if task.key == "copy":
            models[family], i = copy_task.load_or_train(name, show_progress=show_progress)
            info[family] = {"name": name, "n_params": i["n_params"], "train_seconds": i["train_seconds"],
                            "final_loss": i["final_loss"]}
        else:
            models[family] = blockdiff.load_bd_model(name) if family == "BD" else textlm.load_text_model(name)
            info[family] = {"name": name, "n_params": models[family].n_params()}
    return models, info


def decoders(task: Task, models: dict) -> list[Decoder]:
    """The benchmark's rows for ``task``: AR without and with its KV cache; the MDM one token per step (LLaDA) and
    with the confidence threshold, each without and with Fast-dLLM's prefix and dual caches; block diffusion without
    and with its exact cache. (A cache only saves work on the steps after a block's first, full pass: a block
    decoded in one pass, as the confident copying model does at threshold 0.9, leaves it nothing to do; one token
    per step is where it has the most.)"""
    ar, mdm, bd = models["AR"], models["MDM"], models["BD"]
    G, T = task.gen_length, task.temperature
    bm, bb = task.blocks["MDM"], task.blocks["BD"]

    def ar_prompt(p):                                       # free text: the AR model starts from [EOS] as BOS
        return p if p.shape[1] else torch.full((p.shape[0], 1), EOS)

    def ar_run(cache):
        return lambda p, g: caching.ar_decode(ar, ar_prompt(p), G, EOS, cache, T, g, banned=(PAD, MASK))

    def mdm_run(threshold, cache):
        return lambda p, g: caching.diffusion_decode(mdm, p, G, bm, threshold, MASK, EOS, cache, T, g, banned=(PAD,))

    def bd_run(cache):
        return lambda p, g: caching.block_decode(bd, p, G, bb, THRESHOLD, MASK, EOS, cache, T, g, banned=(PAD,))

    return [
        Decoder("ar", "AR, no cache", "AR", ar_run(False)),
        Decoder("ar_kv", "AR + KV cache", "AR", ar_run(True)),
        Decoder("one", "MDM, one token per step", "MDM", mdm_run(1.0, None)),
        Decoder("one_prefix", "MDM, one token per step + prefix cache", "MDM", mdm_run(1.0, "prefix")),
        Decoder("one_dual", "MDM, one token per step + dual cache", "MDM", mdm_run(1.0, "dual")),
        Decoder("threshold", f"MDM, threshold {THRESHOLD}", "MDM", mdm_run(THRESHOLD, None)),
        Decoder("prefix", "MDM, threshold + prefix cache", "MDM", mdm_run(THRESHOLD, "prefix")),
        Decoder("dual", "MDM, threshold + dual cache", "MDM", mdm_run(THRESHOLD, "dual")),
        Decoder("bd", "BD, threshold, no cache", "BD", bd_run(False)),
        Decoder("bd_kv", "BD, threshold + exact KV cache", "BD", bd_run(True)),
    ]


# ------------------------------------------------------------------------------------------- measuring
def _gen(task: Task, index: int):
    """A fresh generator for batch ``index`` (only sampled decoding draws from it): every timed run of a decoder
    then decodes the same samples."""
    return torch.Generator().manual_seed(1000 + index) if task.temperature > 0 else None


def _answers(task: Task, result) -> torch.Tensor:
    return result.answers[:, :task.gen_length]


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _totals(results) -> dict:
    tok = sum(int(r.tokens.sum()) for r in results)
    fw = sum(int(r.forwards.sum()) for r in results)
    pos = sum(int(r.positions.sum()) for r in results)
    calls = sum(len(r.times) for r in results)
    return {"tokens": tok, "forwards_per_token": fw / tok, "positions_per_token": pos / tok, "tpf": tok / fw,
            "model_calls": calls}


def measure_task(task: Task, models: dict, runs: int = RUNS, batch1: int = BATCH1_PROMPTS,
                 large: int = LARGE_BATCH, n_eval: int = N_EVAL, show_progress: bool = True) -> list[dict]:
    """Time and grade every decoder of ``task``; one dict per (decoder, batch size) (see :func:`table_rows`)."""
    decs = decoders(task, models)
    prompts, reference = task.prompts(max(n_eval, large, batch1))
    for d in decs:                                                       # warm-up
        d.run(prompts[:2], _gen(task, 0))
    b1_secs = {d.key: [] for d in decs}
    big_secs = {d.key: [] for d in decs}
    b1_results, big_results = {}, {}
    bar = progress(total=runs * len(decs), desc=f"timing {task.key}") if show_progress else None
    for run in range(runs):                                              # interleaved: run 1 of all, run 2 of all...
        for d in decs:
            res, secs = [], 0.0
            for i in range(batch1):
                r, s = _timed(lambda: d.run(prompts[i:i + 1], _gen(task, i)))
                res.append(r)
                secs += s
            b1_secs[d.key].append(secs)
            b1_results[d.key] = res
            r, s = _timed(lambda: d.run(prompts[:large], _gen(task, 0)))
            big_secs[d.key].append(s)
            big_results[d.key] = r
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    rows = []
    for d in decs:
        correct = [task.correct(_answers(task, big_results[d.key]), None if reference is None else reference[:large])]
        for k, start in enumerate(range(large, n_eval, large), start=1):
            r = d.run(prompts[start:start + large], _gen(task, k))
            correct.append(task.correct(_answers(task, r), None if reference is None else reference[start:start + large]))
        correct = torch.cat(correct)[:n_eval].float()
        acc, se = float(correct.mean()), float(correct.std() / math.sqrt(len(correct)))
        for batch, results, secs in ((1, b1_results[d.key], b1_secs[d.key]),
                                     (large, [big_results[d.key]], big_secs[d.key])):
            t = _totals(results)
            tps = [t["tokens"] / s for s in secs]
            rows.append({"task": task.key, "decoder": d.key, "label": d.label, "family": d.family, "batch": batch,
                         "tokens_per_second": statistics.median(tps), "tokens_per_second_runs": [round(v, 1) for v in tps],
                         "ms_per_call": 1000 * statistics.median(secs) / t["model_calls"],
                         "accuracy": acc, "accuracy_se": se, "n_eval": len(correct), **t})
    return rows


def cache_error(model, prompts, gen_length: int, block_length: int, cache: str, temperature: float = 0.0,
                seed: int = 0, threshold: float = THRESHOLD) -> dict:
    """How far a Fast-dLLM cache is from the full pass, along the cached decoder's own path (threshold decoding at
    ``threshold``): at each of its cached steps, the block's logits against a full pass over the same canvas.
    Returns the number of cached steps, the largest and the mean absolute logit change, and the fraction of the
    block's masked positions whose proposal (argmax) or whose commit decision would differ."""
    stats = {"steps": 0, "max_abs": 0.0, "sum_abs": 0.0, "n_logits": 0, "masked": 0, "argmax_changed": 0,
             "commit_changed": 0}

    def on_step(canvas, lo, hi, logits, full_pass):
        if full_pass:
            return
        exact = model(canvas)[:, lo:hi]
        diff = (logits - exact).abs()
        masked = canvas[:, lo:hi] == MASK
        stats["steps"] += 1
        stats["max_abs"] = max(stats["max_abs"], float(diff.max()))
        stats["sum_abs"] += float(diff.sum())
        stats["n_logits"] += diff.numel()
        stats["masked"] += int(masked.sum())
        a, b = logits.argmax(-1), exact.argmax(-1)
        stats["argmax_changed"] += int((masked & (a != b)).sum())
        pa = torch.softmax(logits.double(), -1).amax(-1) > threshold
        pb = torch.softmax(exact.double(), -1).amax(-1) > threshold
        stats["commit_changed"] += int((masked & (pa != pb)).sum())

    g = torch.Generator().manual_seed(seed) if temperature > 0 else None
    caching.diffusion_decode(model, prompts, gen_length, block_length, threshold, MASK, EOS, cache, temperature, g,
                             banned=(PAD,), on_step=on_step)
    n = max(stats["masked"], 1)
    return {"threshold": threshold, "cached_steps": stats["steps"], "max_abs_logit_change": stats["max_abs"],
            "mean_abs_logit_change": stats["sum_abs"] / max(stats["n_logits"], 1),
            "argmax_changed": stats["argmax_changed"] / n, "commit_changed": stats["commit_changed"] / n,
            "masked_positions": stats["masked"]}


def race_trace(task: Task, models: dict, index: int = 0) -> dict:
    """One prompt decoded at batch 1 by every decoder: the tokens, the model call that wrote each one and the
    wall-clock time of every call (ms): what the race demo plays back."""
    prompts, reference = task.prompts(index + 1)
    p = prompts[index:index + 1]
    out = {"prompt": copy_task.to_text(p[0]) if task.key == "copy" else "",
           "reference": copy_task.to_text(reference[index]) if reference is not None else "", "decoders": {}}
    for d in decoders(task, models):
        r = d.run(p, _gen(task, index))
        n = int(r.tokens[0])
        out["decoders"][d.key] = {"label": d.label, "tokens": _answers(task, r)[0, :n].tolist(),
                                  "commit_call": r.commits[0, :n].tolist(),
                                  "call_ms": [round(1000 * t, 3) for t in r.times]}
    return out


def call_cost(positions=(1, 8, 32, 64, 128, 256, 512, 1024), runs: int = RUNS) -> dict:
    """Milliseconds per forward pass at batch 1 of a bidirectional course Transformer of the benchmark's size (4
    layers, d = 128, random weights) on ``n`` positions, for each ``n``: flat while the fixed cost of a call
    dominates (overhead-bound), then growing with ``n`` (compute-bound). Median of ``runs`` timings of 5 calls."""
    from .nn import Transformer, TransformerConfig
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=copy_task.VOCAB_SIZE, seq_len=max(positions), n_layer=4,
                                          n_head=4, d_model=128)).eval()
    out = {}
    with torch.no_grad():
        for n in positions:
            x = torch.randint(4, copy_task.VOCAB_SIZE, (1, n))
            model(x)
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                for _ in range(5):
                    model(x)
                times.append((time.perf_counter() - t0) / 5)
            out[str(n)] = 1000 * statistics.median(times)
    return out


def cache_scaling(canvases=(64, 256, 512), block_length: int = 8, runs: int = 3) -> dict:
    """Tokens per second at batch 1 of one-token-per-step decoding without a cache and with each Fast-dLLM cache, on
    canvases of ``L`` positions (a prompt of L/2, an answer of L/2), with a bidirectional course Transformer of the
    benchmark's size and random weights. The weights do not change the work: [EOS] is never proposed, so every
    decode writes the whole answer, one token per call. Median of ``runs``. ``{L: {"none" | "prefix" | "dual":
    tokens/s}}``: how the caches' gain at batch 1 grows with the canvas."""
    from .nn import Transformer, TransformerConfig
    torch.manual_seed(0)
    V = copy_task.VOCAB_SIZE
    model = Transformer(TransformerConfig(vocab_size=V, seq_len=max(canvases), n_layer=4, n_head=4, d_model=128)).eval()
    out = {}
    for L in canvases:
        prompt = torch.randint(4, V, (1, L // 2), generator=torch.Generator().manual_seed(L))
        out[str(L)] = {}
        for cache in (None, "prefix", "dual"):
            def decode():
                return caching.diffusion_decode(model, prompt, L // 2, block_length, 1.0, MASK, EOS, cache,
                                                banned=(PAD, EOS))
            decode()
            secs = [_timed(decode)[1] for _ in range(runs)]
            out[str(L)][cache or "none"] = (L // 2) / statistics.median(secs)
    return out


# ------------------------------------------------------------------------------------------- the whole run
PARTS = ("table", "cache_error", "race", "call_cost", "cache_scaling")


def run(tasks=("copy", "text"), path: Path = RESULTS, parts=PARTS, show_progress: bool = True, **kwargs) -> dict:
    """Measure ``parts`` of the benchmark (default all) for ``tasks`` and write ``path`` (default
    ``data/bench/decoding.json``); the parts not measured are kept from the existing file. Returns what was
    written. Parts: ``table`` (every decoder, both batch sizes), ``cache_error`` (the Fast-dLLM caches against full
    passes; copying at one token per step, where the caches are used at every step after a block's first, and free
    text at the benchmark's threshold), ``race`` (the race demo's trace), ``call_cost`` (milliseconds per call
    against positions), ``cache_scaling`` (the caches at batch 1 on longer canvases)."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    old = json.loads(Path(path).read_text()) if Path(path).exists() else {}
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        report = {"machine": machine(), "date": datetime.now().isoformat(timespec="seconds"),
                  "protocol": {"runs": kwargs.get("runs", RUNS), "batch1_prompts": kwargs.get("batch1", BATCH1_PROMPTS),
                               "large_batch": kwargs.get("large", LARGE_BATCH), "n_eval": kwargs.get("n_eval", N_EVAL),
                               "threshold": THRESHOLD, "threads": THREADS},
                  "tasks": old.get("tasks", {}), "rows": old.get("rows", []), "cache_error": old.get("cache_error", {}),
                  "race": old.get("race"), "call_cost_ms": old.get("call_cost_ms"),
                  "cache_scaling": old.get("cache_scaling")}
        for key in tasks:
            task = TASKS[key]
            models, info = load_models(task, show_progress)
            report["tasks"][key] = {"title": task.title, "models": info, "gen_length": task.gen_length,
                                    "blocks": task.blocks, "temperature": task.temperature}
            if "table" in parts:
                report["rows"] = [r for r in report["rows"] if r["task"] != key] + \
                    measure_task(task, models, show_progress=show_progress, **kwargs)
            if "cache_error" in parts:
                n, tau = CACHE_ERROR[key]
                prompts = task.prompts(n)[0]
                report["cache_error"][key] = {c: cache_error(models["MDM"], prompts, task.gen_length,
                                                             task.blocks["MDM"], c, task.temperature, threshold=tau)
                                              for c in ("prefix", "dual")}
            if key == "copy" and "race" in parts:
                report["race"] = race_trace(task, models)
        if "call_cost" in parts:
            report["call_cost_ms"] = call_cost()
        if "cache_scaling" in parts:
            report["cache_scaling"] = cache_scaling()
    finally:
        torch.set_num_threads(threads)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    return report


def load_results(path: Path = RESULTS) -> dict:
    """The stored benchmark (``data/bench/decoding.json``); ``ValueError`` naming the command if it is missing."""
    if not Path(path).exists():
        raise ValueError(f"{path} does not exist; measure it with: ./course bench decoding")
    return json.loads(Path(path).read_text())


def table_rows(results: dict, task: str, batch: int) -> list[dict]:
    """The rows of one table (``task``, ``batch``) with the speed-up over AR + KV cache, in the benchmark's order."""
    rows = [r for r in results["rows"] if r["task"] == task and r["batch"] == batch]
    if not rows:
        raise ValueError(f"no rows for task {task!r} at batch {batch}")
    base = next(r for r in rows if r["decoder"] == "ar_kv")["tokens_per_second"]
    return [dict(r, speedup=r["tokens_per_second"] / base) for r in rows]


def check_results(results: dict) -> None:
    """The bookkeeping every stored benchmark must satisfy (``ValueError`` otherwise): every task at both batch
    sizes with every decoder; ratios consistent with each other (TPF = 1 / forwards per token; AR one forward per
    token; a cache never computes more positions than the same decoder without it); rates positive."""
    keys = [d.key for d in decoders(TASKS["copy"], {"AR": None, "MDM": None, "BD": None})]
    large = results["protocol"]["large_batch"]
    for task in results["tasks"]:
        for batch in (1, large):
            rows = {r["decoder"]: r for r in results["rows"] if r["task"] == task and r["batch"] == batch}
            if sorted(rows) != sorted(keys):
                raise ValueError(f"{task} at batch {batch}: decoders {sorted(rows)} != {sorted(keys)}")
            for r in rows.values():
                if not (r["tokens_per_second"] > 0 and abs(r["tpf"] * r["forwards_per_token"] - 1) < 1e-9
                        and 0 <= r["accuracy"] <= 1 and len(r["tokens_per_second_runs"]) == results["protocol"]["runs"]):
                    raise ValueError(f"{task}, batch {batch}, {r['decoder']}: inconsistent row {r}")
            if abs(rows["ar_kv"]["forwards_per_token"] - 1) > 1e-9 or abs(rows["ar"]["forwards_per_token"] - 1) > 1e-9:
                raise ValueError(f"{task}, batch {batch}: AR must take one forward per token")
            for slow, fast in (("ar", "ar_kv"), ("threshold", "prefix"), ("prefix", "dual"), ("one", "one_prefix"),
                               ("one_prefix", "one_dual"), ("bd", "bd_kv")):
                if rows[fast]["positions_per_token"] > rows[slow]["positions_per_token"] * 1.05:
                    raise ValueError(f"{task}, batch {batch}: {fast} computes more positions per token than {slow}")
