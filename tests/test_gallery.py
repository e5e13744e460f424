"""Lecture mode without a browser: the gallery registry and its precomputed inputs, the offline export's
notebook preparation, and the chapters' slide metadata (tools/slides.py).

- every demo a chapter shows (its executed notebook's ``<Demo name: ...>`` outputs) is in the gallery
  registry under that chapter, and nothing else is;
- every entry's stored inputs load (current with the checkpoints' hashes) and build a demo with that name,
  controls carrying ``demo-control-<key>`` classes, and a rendered PNG;
- a cheap part of the stored inputs is recomputed from scratch and compared (1a, 2a, 4b exactly; 3a and 4a,
  which run a model, to 1e-6); 4b's masks against a transcription of LLaDA 2.0 eq. 3-4, 4d's against the stored
  grid, 4c's frames against the held-out sum (the S-Mode run shows a repaired draft error);
- every control of the chapter-4 demos moves once and changes the picture or the caption;
- stale, missing or foreign inputs raise a ValueError that names the command that recomputes them;
- slide types follow the headings (hand-made cases), are idempotent, and the chapters carry them.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib import gallery, viz  # noqa: E402
from course_lib.demos.base import Demo  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
DEMO_REPR = re.compile(r"^<Demo (\w+): .*?>")


def chapter_demos(path: Path) -> list[str]:
    """Names of the demos the executed chapter displays, read from its outputs (independent of the registry)."""
    names = []
    for cell in nbformat.read(path, as_version=4).cells:
        for out in cell.get("outputs", []):
            m = DEMO_REPR.match(str(out.get("data", {}).get("text/plain", "")).strip())
            if m and "application/vnd.jupyter.widget-view+json" in out.get("data", {}):
                names.append(m.group(1))
    return names


# ------------------------------------------------------------------------------------------ registry
@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_chapter_demo_is_in_the_gallery(path):
    number = int(path.name[:2])
    in_chapter = chapter_demos(path)
    in_gallery = [d.name for d in gallery.DEMOS if d.chapter == number]
    missing = sorted(set(in_chapter) - set(in_gallery))
    assert not missing, (f"{path.name} shows demos {missing} that the gallery lacks: add an entry per demo to "
                         "course_lib.gallery.DEMOS, then run python -m course_lib.gallery KEY")
    extra = sorted(set(in_gallery) - set(in_chapter))
    assert not extra, f"gallery demos {extra} are not shown by {path.name}"


def test_registry_keys_follow_chapters_and_reading_order():
    for ch in sorted({d.chapter for d in gallery.DEMOS}):
        keys = [d.key for d in gallery.DEMOS if d.chapter == ch]
        assert keys == [f"{ch}{chr(ord('a') + i)}" for i in range(len(keys))], f"chapter {ch} keys {keys}"


def _entry(**kw):
    base = dict(chapter=1, key="1a", name="x", title="A demo", explanation=" ".join(["word"] * 20),
                compute=dict, build=lambda x: None)
    base.update(kw)
    return gallery.GalleryDemo(**base)


@pytest.mark.parametrize("demos, match", [
    ([_entry(), _entry(name="y")], "unique keys"),
    ([_entry(), _entry(key="1b")], "unique names"),
    ([_entry(key="2a")], "chapter number"),
    ([_entry(key="1")], "chapter number"),
    ([_entry(name="a-b")], "alphanumeric"),
    ([_entry(explanation="too short")], "explanation"),
    ([_entry(title=" ")], "title"),
])
def test_check_registry_rejects_bad_entries(demos, match):
    with pytest.raises(ValueError, match=match):
        gallery.check_registry(demos)
    gallery.check_registry([_entry()])


def test_entry_lookup():
    assert gallery.entry("1a").name == "noising"
    with pytest.raises(ValueError, match="no gallery demo with key '9z'"):
        gallery.entry("9z")


# ------------------------------------------------------------------------------- inputs and demos
BUILT = {}


def built(key):
    """The gallery's demo, drawn in projector style as the gallery draws it."""
    if key not in BUILT:
        with matplotlib.rc_context():
            viz.projector()
            BUILT[key] = gallery.entry(key).demo()
    return BUILT[key]


@pytest.mark.parametrize("key", [d.key for d in gallery.DEMOS])
def test_stored_inputs_build_the_demo(key):
    d = gallery.entry(key)
    demo = built(key)
    assert isinstance(demo, Demo) and demo.name == d.name
    assert f"demo-{d.name}" in demo._dom_classes
    assert demo.controls, f"demo {key} has no control"
    for ck, c in demo.controls.items():
        assert f"demo-control-{ck}" in c._dom_classes
    assert demo.image.value[:8] == b"\x89PNG\r\n\x1a\n" and demo.caption.value.strip()


def test_text_is_readable_on_a_1280_by_720_projector():
    """Every figure's smallest text, scaled to the room the gallery gives it on a 1280 x 720 screen, is about 18 px
    (the browser test measures the same on the page)."""
    shown = {d.key: round(gallery.shown_text_px(built(d.key)), 1) for d in gallery.DEMOS}
    print(shown)
    assert min(shown.values()) >= 17.5, shown


def test_stored_inputs_are_small():
    total = sum(p.stat().st_size for p in gallery.DATA.glob("*.npz"))
    assert total < 3e6, f"data/gallery holds {total / 1e6:.1f} MB; keep the precomputed inputs small"
    assert {p.name for p in gallery.DATA.glob("*.npz")} == {d.path.name for d in gallery.DEMOS}, \
        "data/gallery/ must hold exactly one file per registry entry"


def test_gallery_kernel_needs_no_torch():
    """Loading every demo's inputs and building the demos must not import torch (start-up time)."""
    import subprocess
    import sys
    code = ("import sys, matplotlib; matplotlib.use('Agg'); from course_lib import gallery\n"
            "[gallery.load_inputs(d) for d in gallery.DEMOS]; gallery.entry('1a').demo()\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_recomputed_noising_and_transition_inputs_match():
    """Recomputed from scratch, the inputs equal the stored ones: integers exactly, floats to round-off (float64
    schedules use exp and cos, whose last bits differ between CPUs)."""
    for key in ("1a", "2a"):
        d = gallery.entry(key)
        fresh, stored = d.compute(), d.inputs()
        stored_arrays, fresh_arrays = {}, {}
        assert gallery._pack(stored, stored_arrays) == gallery._pack(fresh, fresh_arrays), f"demo {key}: structure"
        for ref in stored_arrays:
            a, b = stored_arrays[ref], fresh_arrays[ref]
            if np.issubdtype(a.dtype, np.floating):
                np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15, err_msg=f"demo {key}: array {ref}")
            else:
                assert np.array_equal(a, b), f"demo {key}: array {ref} differs"


def test_recomputed_masking_inputs_match():
    d = gallery.entry("3a")
    fresh, stored = d.compute(), d.inputs()
    assert fresh["sentence"] == stored["sentence"] and fresh["top_words"] == stored["top_words"]
    assert np.array_equal(fresh["masks"], stored["masks"]) and np.array_equal(fresh["t_values"], stored["t_values"])
    np.testing.assert_allclose(fresh["top_probs"], stored["top_probs"], atol=1e-6)


CHAPTER4 = ["4a", "4b", "4c", "4d", "4e"]


@pytest.mark.parametrize("key", CHAPTER4)
def test_chapter4_demos_move_every_control(key):
    """Every control of a chapter-4 demo moves once (to its other end, or another option) and re-renders."""
    demo = built(key)
    saved = demo.values()
    for ck, c in demo.controls.items():
        before = (demo.image.value, demo.caption.value)
        if hasattr(c, "options"):
            new = next(o for o in c.options if o != c.value)
        else:
            assert c.max > c.min, f"demo {key}: control {ck} has a single value"
            new = c.max if c.value != c.max else c.min
        demo.set(**{ck: new})
        assert demo.controls[ck].value == new
        assert (demo.image.value, demo.caption.value) != before, f"demo {key}: moving {ck} changed nothing"
    demo.set(**saved)


def test_block_mask_inputs_follow_the_four_cases():
    """4b: the stored masks, against a direct transcription of LLaDA 2.0 eq. 3-4, and recomputed exactly."""
    d = gallery.entry("4b")
    x = d.inputs()
    L = x["L"]
    assert L == 16 and x["block_sizes"] == [1, 2, 4, 8, 16]
    assert sorted(x["masks"], key=int) == ["1", "2", "4", "8", "16"]
    for lb, m in x["masks"].items():
        b = np.arange(2 * L) % L // int(lb)                     # block of each position, in x_t and in x_0
        qt, kt = np.arange(2 * L)[:, None] < L, np.arange(2 * L)[None, :] < L
        ref = np.where(qt & kt, b[:, None] == b[None, :],                    # x_t -> x_t: same block
                       np.where(qt & ~kt, b[:, None] > b[None, :],            # x_t -> x_0: earlier blocks
                                np.where(~qt & ~kt, b[:, None] >= b[None, :], False)))   # x_0 -> x_0; x_0 -> x_t: none
        assert m.dtype == bool and np.array_equal(m, ref), f"block size {lb}"
    fresh = d.compute()
    assert all(np.array_equal(fresh["masks"][k], x["masks"][k]) for k in x["masks"])


def test_threshold_inputs_are_the_stored_grid():
    """4e: the grid is data/arith/editing_grid.json as stored, and the S/Q stars are its entries at the
    chapter's MODES (S = (0.5, 0.0), Q = (0.95, 0.9))."""
    from course_lib import arith
    grid = json.loads(arith.GRID_PATH.read_text())
    x = gallery.entry("4e").inputs()
    assert x["tau_mask_values"] == grid["tau_mask"] and x["tau_edit_values"] == grid["tau_edit"]
    assert np.array_equal(x["tpf"], np.array(grid["tpf"])) and np.array_equal(x["accuracy"], np.array(grid["accuracy"]))
    for name, (tm, te) in {"S-Mode": (0.5, 0.0), "Q-Mode": (0.95, 0.9)}.items():
        i, j = grid["tau_mask"].index(tm), grid["tau_edit"].index(te)
        assert x["references"][f"{name} (ours)"] == [grid["tpf"][i][j], grid["accuracy"][i][j]], name


def test_recomputed_router_inputs_match():
    """4a: one forward pass of moe_llada2 on test sentence 3, recomputed; the words are that sentence."""
    from course_lib import language
    d = gallery.entry("4a")
    fresh, stored = d.compute(), d.inputs()
    sentence = language.read_split("test")[3]
    assert stored["words"][:len(sentence)] == list(sentence) and fresh["words"] == stored["words"]
    assert fresh["layer_names"] == stored["layer_names"] and fresh["n_experts"] == stored["n_experts"]
    assert np.array_equal(fresh["experts"], stored["experts"])
    np.testing.assert_allclose(fresh["weights"], stored["weights"], atol=1e-6)


def test_editing_playback_inputs_show_a_repair():
    """4d: the three runs decode the chapter's held-out prompt ``row``; S-Mode ends on the right answer after
    at least one T2T edit that turns a wrong token into the right one; T2T off never edits."""
    from course_lib import arith
    x = gallery.entry("4d").inputs()
    assert list(x["frames"]) == ["S-Mode", "Q-Mode", "S-Mode, T2T off"]
    P, row = x["prompt_length"], x["row"]
    pair = arith.problems("test")[:1000][row]
    prompt = [int(c) for c in f"{int(pair[0]):03d}"] + [arith.PLUS_ID] + [int(c) for c in f"{int(pair[1]):03d}"] \
        + [arith.EQ_ID]
    answer = [int(c) for c in f"{int(pair.sum()):04d}"] + [arith.EOS_ID] * 4
    for name, frames in x["frames"].items():
        assert frames[0]["reference"] == answer, name
        assert all(f["tokens"][:P] == prompt for f in frames), name
    s_mode = x["frames"]["S-Mode"]
    assert s_mode[-1]["tokens"][P:P + 5] == answer[:5]                 # graded: the digits and the first [EOS]
    repairs = [(p, old, new) for f in s_mode for p, old, new in f["t2t"] if old != answer[p - P] == new]
    assert repairs, "S-Mode shows no repaired draft error"
    assert not any(f["t2t"] or f["post"] for f in x["frames"]["S-Mode, T2T off"])


# ------------------------------------------------------------------------------------------- storage
def test_save_and_load_round_trip(tmp_path):
    d = _entry(checkpoints=("ddpm2d_gmm",))
    inputs = {"a": np.arange(6, dtype=np.int16).reshape(2, 3), "nested": {"words": ["x", "y"], "f": 0.5,
              "list": [np.ones(2), {"k": np.float32(1.5)}]}, "n": np.int64(3), "none": None, "flag": True}
    path = gallery.save_inputs(d, inputs, tmp_path / "x.npz")
    back = gallery.load_inputs(d, path)
    assert back["a"].dtype == np.int16 and np.array_equal(back["a"], inputs["a"])
    assert back["nested"]["words"] == ["x", "y"] and back["nested"]["f"] == 0.5 and back["n"] == 3
    assert np.array_equal(back["nested"]["list"][0], np.ones(2)) and back["nested"]["list"][1] == {"k": 1.5}
    assert back["none"] is None and back["flag"] is True


def test_stale_missing_and_foreign_inputs_name_the_fix(tmp_path):
    d = _entry(checkpoints=("ddpm2d_gmm",))
    with pytest.raises(ValueError, match=r"missing.*python -m course_lib.gallery 1a"):
        gallery.load_inputs(d, tmp_path / "none.npz")
    path = gallery.save_inputs(d, {"a": np.zeros(2)}, tmp_path / "x.npz")
    with pytest.raises(ValueError, match="does not hold demo 1b"):
        gallery.load_inputs(_entry(key="1b", checkpoints=("ddpm2d_gmm",)), path)
    with np.load(path) as z:
        meta = json.loads(str(z["__meta__"]))
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    meta["checkpoints"]["ddpm2d_gmm"] = "0" * 64                     # as if the checkpoint was retrained since
    np.savez(path, __meta__=np.array(json.dumps(meta)), **arrays)
    with pytest.raises(ValueError, match=r"older versions of \['ddpm2d_gmm'\].*python -m course_lib.gallery 1a"):
        gallery.load_inputs(d, path)
    with pytest.raises(ValueError, match="does not list"):
        gallery.save_inputs(_entry(checkpoints=("no_such_model",)), {}, tmp_path / "y.npz")


@pytest.mark.parametrize("bad, match", [({1: 2}, "string keys"), ({"a": {1, 2}}, "cannot store a set")])
def test_pack_rejects_what_it_cannot_store(bad, match):
    with pytest.raises(ValueError, match=match):
        gallery._pack(bad, {})


# ------------------------------------------------------------------------------- page and serving
def test_page_css_themes():
    light, dark = gallery.page_css("light"), gallery.page_css("dark")
    assert "--jp-widgets-font-size: 22px" in light and "--jp-widgets-font-size: 22px" in dark
    assert "#0E0E0E" in dark and "#0E0E0E" not in light
    with pytest.raises(ValueError, match="theme must be one of"):
        gallery.page_css("blue")


def test_show_builds_cards_and_hides_code(monkeypatch):
    monkeypatch.setenv("COURSE_GALLERY_THEME", "dark")
    with matplotlib.rc_context():                       # show() switches on projector mode: undo it afterwards
        shown = gallery.show(keys=["1d"])
        assert matplotlib.rcParams["font.size"] == 16
    assert list(shown) == ["1d"] and shown["1d"].children[0].layout.display == "none"
    monkeypatch.setenv("COURSE_GALLERY_THEME", "sepia")
    with pytest.raises(ValueError, match="COURSE_GALLERY_THEME"):
        gallery.show(keys=["1d"])


def test_voila_command_and_environment():
    cmd = gallery.voila_command(9999, dark=True)
    for part in ("--port=9999", "--Voila.ip=127.0.0.1", "--preheat_kernel=True", "--theme=dark", "--template=course",
                 "--no-browser", "--strip_sources=True"):
        assert part in cmd
    with pytest.raises(ValueError, match="port"):
        gallery.voila_command(0)
    env = gallery.voila_env(dark=True)
    assert env["COURSE_GALLERY_THEME"] == "dark"
    template = Path(env["JUPYTER_PATH"].split(":")[0]) / "voila" / "templates" / "course" / "index.html.j2"
    assert template.exists()
    page_config = Path(env["JUPYTER_CONFIG_PATH"].split(":")[0]) / "labconfig" / "page_config.json"
    assert json.loads(page_config.read_text())["disabledExtensions"]["jupyterlab-jupytext"] is True


def test_serve_rejects_unknown_options():
    with pytest.raises(ValueError, match="unknown option"):
        gallery.serve(["--light"])
    with pytest.raises(ValueError, match="--port needs a number"):
        gallery.serve(["--port"])


def test_gallery_notebook_is_one_unexecuted_cell():
    nb = nbformat.read(gallery.NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) == 1 and "gallery.show()" in code[0].source and not code[0].outputs
    assert nb.metadata.kernelspec.name == "python3"


# ----------------------------------------------------------------------------------- offline export
def _nb_with_demo(static=True):
    nb = nbformat.v4.new_notebook(metadata={"widgets": {"state": {}}})
    view = nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                                         "text/plain": "<Demo noising: Forward process: drag t>"})
    bar = nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "y"},
                                                       "text/plain": "samplers: 100%"})
    png = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})
    nb.cells = [nbformat.v4.new_code_cell("demo_noise = widgets.noising_demo(x)\ndemo_noise", outputs=[view, bar]),
                nbformat.v4.new_markdown_cell("*Static form*")]
    if static:
        nb.cells.append(nbformat.v4.new_code_cell("_ = demo_noise.static([])\nplt.show()", outputs=[png]))
    return nb


def test_export_prepare_replaces_demos_and_tags_their_static_form():
    from export_html import prepare
    nb, demos = prepare(_nb_with_demo(), "test")
    assert demos == ["noising"] and "widgets" not in nb.metadata
    view, bar = nb.cells[0].outputs
    assert "application/vnd.jupyter.widget-view+json" not in view.data and "demo-live-noising" in view.data["text/html"]
    assert "text/html" not in bar.data and bar.data["text/plain"] == "samplers: 100%"
    assert nb.cells[2].metadata["tags"] == ["demo-static-noising"]


def test_export_prepare_requires_a_static_form():
    from export_html import ExportError, prepare
    with pytest.raises(ExportError, match="demo 'noising' has no static form"):
        prepare(_nb_with_demo(static=False), "test")


# ------------------------------------------------------------------------------------------- slides
def test_slide_types_follow_headings():
    from slides import slide_type
    cases = [("markdown", "# Chapter 1 — From DDPM", "slide"), ("markdown", "## 3. The ELBO\n\ntext", "slide"),
             ("markdown", "### Langevin dynamics", "subslide"), ("markdown", "**Demo 1a — drag $t$.** The cloud", "subslide"),
             ("markdown", "**Your turn — Exercise 1.1.** Implement", "subslide"), ("markdown", "Plain prose.", None),
             ("markdown", "#### A small heading", None), ("code", "# a comment\nx = 1", None),
             ("markdown", "\n\n## After blank lines", "slide")]
    for cell_type, source, want in cases:
        assert slide_type(cell_type, source) == want, (cell_type, source)


def test_apply_slides_is_idempotent_and_keeps_hand_made_types():
    from slides import apply_slides
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_markdown_cell("Prose", metadata={"slideshow": {"slide_type": "slide"}}),
                nbformat.v4.new_code_cell("y = 2", metadata={"slideshow": {"slide_type": "fragment"}, "tags": ["t"]})]
    changed = apply_slides(nb)
    assert changed == 2
    assert nb.cells[0].metadata["slideshow"] == {"slide_type": "slide"}
    assert "slideshow" not in nb.cells[1].metadata and "slideshow" not in nb.cells[2].metadata
    assert nb.cells[3].metadata == {"slideshow": {"slide_type": "fragment"}, "tags": ["t"]}
    assert apply_slides(nb) == 0


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapters_carry_slide_metadata(path):
    from slides import apply_slides
    import jupytext
    for nb in (nbformat.read(path, as_version=4), jupytext.read(path.with_suffix(".py"))):
        assert apply_slides(nb) == 0, f"{path.stem}: slide metadata is missing or stale: run python tools/slides.py"
        assert nb.cells[0].metadata.get("slideshow", {}).get("slide_type") == "slide"


def test_slides_extension_installs_with_the_pinned_jupyterlab():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True,
                         timeout=120)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    line = next((l for l in text.splitlines() if l.strip().startswith("jupyterlab-rise ")), "")
    assert "enabled" in line and "OK" in line, f"jupyterlab-rise is not an enabled, compatible extension:\n{text}"


def test_closing_a_gallery_page_can_shut_its_kernel_down():
    """Voila's page asks for its kernel's shutdown without an XSRF token (voila-dashboards/voila#1458); the gallery's
    Voila config turns that check off so reloads do not pile up kernels (`./course bench reloads` measures it)."""
    env = gallery.voila_env()
    config_dirs = env["JUPYTER_CONFIG_PATH"].split(os.pathsep)
    config = json.loads((Path(config_dirs[0]) / "voila.json").read_text())
    assert config["Voila"]["tornado_settings"]["disable_check_xsrf"] is True
    assert "--Voila.ip=127.0.0.1" in gallery.voila_command(8866)          # ... and only this machine can reach it
