"""The course's benchmark: the times that tests must not assert (a loaded machine would fail them).

Usage (normally through ``./course bench``):

    python tools/bench.py [chapters] [demos] [browser]      (default: all three)
    python tools/bench.py chapters 01 03                     (only some chapters)
    python tools/bench.py decoding                           (chapter 4's speed benchmark)

- **chapters**: each chapter executed top to bottom in a fresh kernel, as ``./course run NN`` does (but nothing is
  written): the wall time, and the slowest cells. Budget: 90 s per chapter on a 2-core CPU.
- **demos**: every demo of the lecture gallery built from its stored inputs, its first slider moved 20 times:
  the callback's median and worst time (what a key press costs in Python). Budget: median <= 50 ms.
- **browser**: the gallery served by Voila and opened in Chromium (as ``./course gallery``): seconds from the
  start command to every demo rendered, and key press to updated image, 12 presses per demo. Budgets: ready
  <= 15 s, median <= 150 ms, worst <= 500 ms.

- **decoding** (only when named: it trains three small models the first time, then takes several minutes):
  chapter 4's speed benchmark, AR with a KV cache against every diffusion decoder, in tokens per second at batch 1
  and at a large batch, with accuracy; writes ``data/bench/decoding.json`` (shipped: the chapter shows it).

Prints a table per part (with the budget and whether it is met) and writes ``build/bench/bench.json`` with the
machine it ran on. Run it on an idle machine: other jobs inflate every number.
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench" / "bench.json"
CHAPTER_BUDGET_S, CALLBACK_BUDGET_MS = 90.0, 50.0
READY_BUDGET_S, PRESS_MEDIAN_BUDGET_MS, PRESS_WORST_BUDGET_MS = 15.0, 150.0, 500.0


def ok(met: bool) -> str:
    return "met" if met else "NOT met"


def bench_chapters(which: list[str]) -> dict:
    import nbformat
    from execute_chapter import chapter_sources, execute, kernel_env, resolve

    out = {}
    sources = [p for arg in which for p in resolve(arg)] if which else chapter_sources()
    print(f"| chapter | seconds | slowest cells (seconds) | budget {CHAPTER_BUDGET_S:.0f} s |\n| --- | ---: | --- | --- |")
    for py in sources:
        nb = nbformat.read(py.with_suffix(".ipynb"), as_version=4)
        for c in nb.cells:
            if c.cell_type == "code":
                c.outputs, c.execution_count = [], None
        t0 = time.perf_counter()
        execute(nb, py.parent, kernel_env(), record_timing=True)
        seconds = time.perf_counter() - t0
        cells = []
        for i, c in enumerate(x for x in nb.cells if x.cell_type == "code"):
            t = c.metadata.get("execution", {})
            if "iopub.execute_input" in t and "shell.execute_reply" in t:
                a, b = (datetime.fromisoformat(t[k].replace("Z", "+00:00"))
                        for k in ("iopub.execute_input", "shell.execute_reply"))
                cells.append((round((b - a).total_seconds(), 1), i))
        slowest = sorted(cells, reverse=True)[:5]
        out[py.stem] = {"seconds": round(seconds, 1), "slowest_cells": [{"code_cell": i, "seconds": s} for s, i in slowest]}
        print(f"| {py.stem} | {seconds:.1f} | " + ", ".join(f"{i}: {s}" for s, i in slowest)
              + f" | {ok(seconds <= CHAPTER_BUDGET_S)} |", flush=True)
    return out


def bench_demos() -> dict:
    import matplotlib
    matplotlib.use("Agg")
    from course_lib import gallery

    out = {}
    print(f"| demo | median ms | worst ms | budget: median <= {CALLBACK_BUDGET_MS:.0f} ms |\n| --- | ---: | ---: | --- |")
    for d in gallery.DEMOS:
        demo = d.demo()
        slider = next(c for c in demo.controls.values() if hasattr(c, "max"))
        demo.timings_ms.clear()
        for _ in range(20):
            nxt = slider.value + slider.step
            slider.value = nxt if nxt <= slider.max else slider.min
        med, worst = statistics.median(demo.timings_ms), max(demo.timings_ms)
        out[d.key] = {"demo": d.name, "median_ms": round(med, 1), "worst_ms": round(worst, 1), "n": 20}
        print(f"| {d.key} {d.name} | {med:.1f} | {worst:.1f} | {ok(med <= CALLBACK_BUDGET_MS)} |", flush=True)
    return out


def bench_browser() -> dict:
    from browser import CHROMIUM, chromium, keypress_latency, served_gallery, summary
    from course_lib import gallery

    if not CHROMIUM.exists():
        print(f"(no Chromium at {CHROMIUM}: apt-get install -y chromium; the browser part is skipped)")
        return {}
    with chromium() as b, tempfile.TemporaryDirectory() as tmp:
        with served_gallery(b, Path(tmp) / "voila.log") as s:
            out = {"ready_s": round(s["ready"], 1), "keypress": {}}
            print(f"gallery ready (every demo rendered) {s['ready']:.1f} s after the start command "
                  f"(budget {READY_BUDGET_S:.0f} s: {ok(s['ready'] <= READY_BUDGET_S)})")
            print(f"| demo | median ms | worst ms | budget: median <= {PRESS_MEDIAN_BUDGET_MS:.0f}, worst <= "
                  f"{PRESS_WORST_BUDGET_MS:.0f} ms |\n| --- | ---: | ---: | --- |")
            for d in gallery.DEMOS:
                r = summary(keypress_latency(s["page"], d.key))
                out["keypress"][d.key] = dict(r, demo=d.name)
                met = r["median_ms"] <= PRESS_MEDIAN_BUDGET_MS and r["worst_ms"] <= PRESS_WORST_BUDGET_MS
                print(f"| {d.key} {d.name} | {r['median_ms']:.0f} | {r['worst_ms']:.0f} | {ok(met)} |", flush=True)
    return out


def bench_reloads(n: int = 50) -> dict:
    """Reload the gallery page ``n`` times (each time until every demo has its image), then count the kernels the
    Voila process tree holds and its memory, against the values after the first load."""
    import subprocess

    import psutil
    from browser import CHROMIUM, chromium, free_port, stop, wait_for_preheat
    from course_lib import gallery

    if not CHROMIUM.exists():
        print(f"(no Chromium at {CHROMIUM}: apt-get install -y chromium; the reload part is skipped)")
        return {}
    all_images = ("[...document.querySelectorAll('img.demo-image')].length >= " + str(len(gallery.DEMOS)) +
                  " && [...document.querySelectorAll('img.demo-image')].every(i => i.src.startsWith('blob:'))")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp, chromium() as b:
        log = Path(tmp) / "voila.log"
        with open(log, "w") as f:
            proc = subprocess.Popen(gallery.voila_command(port), env=gallery.voila_env(), stdout=f,
                                    stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wait_for_preheat(port, proc, log, 90)
            tree = psutil.Process(proc.pid)

            def state():
                kids = tree.children(recursive=True)
                kernels = sum("ipykernel" in " ".join(c.cmdline()) for c in kids)
                return kernels, sum(c.memory_info().rss for c in [tree, *kids]) / 1e6

            page = b.new_page(viewport={"width": 1280, "height": 720})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
            page.wait_for_function(all_images, timeout=120_000)
            k0, m0 = state()
            for _ in range(n):
                page.reload(wait_until="domcontentloaded")
                page.wait_for_function(all_images, timeout=120_000)
            time.sleep(5)                                   # let the last shutdown and the pool refill settle
            k1, m1 = state()
            refused = log.read_text().count("'_xsrf' argument missing")
        finally:
            stop(proc)
    met = k1 <= 2 and m1 <= 1.5 * m0
    print(f"after the first load: {k0} kernels, {m0:.0f} MB; after {n} reloads: {k1} kernels, {m1:.0f} MB "
          f"({m1 / m0:.2f}x); shutdown requests refused: {refused} (bar: at most 2 kernels and 1.5x: {ok(met)})")
    return {"reloads": n, "kernels_first": k0, "mb_first": round(m0), "kernels_after": k1, "mb_after": round(m1),
            "refused_shutdowns": refused}


def bench_decoding() -> dict:
    """Chapter 4's speed benchmark (course_lib.speed): writes data/bench/decoding.json, which the chapter shows."""
    from course_lib import speed

    res = speed.run(parts=[a.split("=", 1)[1] for a in sys.argv if a.startswith("--part=")] or speed.PARTS)
    speed.check_results(res)
    for task in res["tasks"]:
        for batch in (1, res["protocol"]["large_batch"]):
            print(f"\n{task}, batch {batch}\n| decoder | tokens/s | x AR+KV | forwards/token | positions/token | "
                  f"accuracy % |\n| --- | ---: | ---: | ---: | ---: | ---: |")
            for r in speed.table_rows(res, task, batch):
                print(f"| {r['label']} | {r['tokens_per_second']:.0f} | {r['speedup']:.2f} | {r['forwards_per_token']:.3f} "
                      f"| {r['positions_per_token']:.1f} | {100 * r['accuracy']:.1f} |")
    print(f"\nwritten: {speed.RESULTS.relative_to(ROOT)}")
    return {"written": str(speed.RESULTS.relative_to(ROOT))}


PARTS = ("chapters", "demos", "browser", "reloads", "decoding")


def main(argv: list[str]) -> int:
    parts = [a for a in argv if a in PARTS] or ["chapters", "demos", "browser"]
    chapters = [a for a in argv if a not in PARTS]
    from course_lib.runtime import machine

    report = {"machine": machine(), "date": datetime.now().isoformat(timespec="seconds")}
    print(f"machine: {report['machine']}")
    for part in parts:
        print(f"\n## {part}")
        report[part] = {"chapters": lambda: bench_chapters(chapters), "demos": bench_demos,
                        "browser": bench_browser, "reloads": bench_reloads, "decoding": bench_decoding}[part]()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(OUT.read_text()) if OUT.exists() else {}
    OUT.write_text(json.dumps({**old, **report}, indent=2) + "\n")
    print(f"\nwritten: {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
