"""Lecture mode in a real browser (Playwright driving Debian's Chromium; README, "Lecture mode").

- **Gallery** (one Voila server and one browser for the whole file): every demo of the registry
  ``course_lib.gallery.DEMOS`` renders; the page makes no request off this machine; every control of every demo
  (sliders by keyboard, dropdowns, toggle buttons, checkboxes, buttons) changes the demo's image bytes or its
  caption; a screenshot of each demo goes to ``build/test-artifacts/``; no JavaScript console error.
- **Offline export** (``tools/export_html.py``): the pages, opened from disk with every non-file request
  blocked, make zero failed requests and show each demo's static form (a loaded image).
- **JupyterLab** (what a new student sees, chapter 1's first demo live in the lab, the slides extension): in
  ``tests/test_entry_point.py``, on the lab that ``python course.py lab --student`` starts.

Times (the gallery's start-up, key press to updated image) are measured by ``./course bench browser``, not
asserted here: a loaded machine must not fail the suite. Without Chromium every test here is skipped with a
message saying how to install it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from browser import (CHROMIUM, chromium, demo_state, evaluate_within, move, served_gallery,
                     wait_new_image)
from course_lib import gallery

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "build" / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM}: install it with `apt-get update && apt-get install -y chromium` "
           "(Debian/Ubuntu, as .ci/run does), or point COURSE_CHROMIUM at a Chromium or Chrome binary")


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def served(browser, tmp_path_factory):
    with served_gallery(browser, tmp_path_factory.mktemp("voila") / "voila.log") as s:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        yield s


# ------------------------------------------------------------------------------------------ gallery
def test_gallery_complete_and_offline(served):
    page, watch = served["page"], served["watch"]
    shown = page.evaluate("[...document.querySelectorAll('[class*=\"gallery-card\"]')].length")
    assert shown == len(gallery.DEMOS)
    for d in gallery.DEMOS:
        text = page.locator(f".gallery-{d.key}").text_content()
        assert d.title in text and f"Chapter {d.chapter}" in text, f"demo {d.key}: title or chapter missing"
    assert not watch.remote, f"the gallery requested files from off this machine: {watch.remote[:5]}"
    assert page.locator(".jp-InputArea").count() == 0 or not page.locator(".jp-InputArea").first.is_visible(), \
        "the gallery shows code"


@pytest.mark.parametrize("key", [d.key for d in gallery.DEMOS])
def test_every_control_changes_the_demo(served, key):
    d = gallery.entry(key)
    page, root = served["page"], f".demo-{d.name}"
    page.locator(root).scroll_into_view_if_needed()
    controls = page.locator(f"{root} [class*='demo-control-']")
    keys = [re.search(r"demo-control-(\w+)", c.get_attribute("class")).group(1) for c in controls.all()]
    assert keys, f"demo {key}: no control with a demo-control-<key> class"
    for ck in keys:
        what = f"demo {key} ({d.name}), control {ck!r}"
        before = demo_state(page, root)
        move(page, page.locator(f"{root} .demo-control-{ck}"), what)
        wait_new_image(page, root, before["src"], what)
        after = demo_state(page, root)
        assert after["image"] != before["image"] or after["caption"] != before["caption"], \
            f"{what}: neither the image bytes nor the caption changed"
    page.locator(f".gallery-{key}").screenshot(path=str(ARTIFACTS / f"gallery_{key}_{d.name}.png"))
    assert not served["watch"].errors, f"console errors: {served['watch'].errors[:5]}"


CONTROL_BOXES = """() => [...document.querySelectorAll('.gallery-card')].map(card => {
  const c = card.getBoundingClientRect(), key = card.querySelector('.gallery-head').id;
  const parts = card.querySelectorAll("[class*='demo-control-'], [class*='demo-control-'] select, "
                                      + "[class*='demo-control-'] .widget-readout, [class*='demo-control-'] .widget-label");
  const clipped = [...parts].filter(e => e.offsetParent !== null).map(e => e.getBoundingClientRect())
                            .filter(r => r.right > c.right + 0.5 || r.left < c.left - 0.5).length;
  const top = card.querySelector("[class*='demo-control-']").getBoundingClientRect().top;
  const img = card.querySelector('img.demo-image'), box = img.getBoundingClientRect();
  const pad = parseFloat(getComputedStyle(img).paddingLeft) * 2;           // the figure inside the image box
  const scale = Math.min((img.clientWidth - pad) / img.naturalWidth, (img.clientHeight - pad) / img.naturalHeight);
  const shown = parseFloat(card.querySelector('.gallery-head').dataset.minTextPx) * scale;
  return [key.replace('demo-', ''), clipped, Math.round(box.bottom - top), Math.round(shown * 10) / 10];
})"""


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)], ids=["1280x720", "1920x1080"])
def test_no_control_is_clipped_by_its_card(served, size, theme):
    """On a projector's 1280 x 720 as on full HD, in both themes, every control (slider, dropdown, their labels and
    readouts) lies inside its demo's card, each demo's controls and figure fit one screen, and the smallest text of
    every figure is shown at about 18 px or more (the page is served in the light theme; the dark theme's style
    sheet is added on top for its run, as ``./course gallery --dark`` would include it)."""
    page = served["page"]
    page.set_viewport_size({"width": size[0], "height": size[1]})
    if theme == "dark":
        page.evaluate("css => { const s = document.createElement('style'); s.id = 'test-dark'; s.textContent = css; "
                      "document.head.appendChild(s); }", gallery.page_css("dark"))
    try:
        page.wait_for_timeout(300)
        boxes = page.evaluate(CONTROL_BOXES)
    finally:
        page.evaluate("() => { const s = document.getElementById('test-dark'); if (s) { s.remove(); } }")
        page.set_viewport_size({"width": 1600, "height": 1900})
    print(f"\n{size[0]}x{size[1]} {theme}: controls + figure height (px) and smallest text as shown (px): "
          + ", ".join(f"{k} {h} {px}" for k, _, h, px in boxes))
    assert not [k for k, n, _, _ in boxes if n], f"controls run past their card at {size}: {boxes}"
    assert not [k for k, _, h, _ in boxes if h > size[1]], f"controls + figure taller than the screen, {size}: {boxes}"
    assert not [k for k, _, _, px in boxes if px < 17.5], f"figure text below ~18 px at {size}: {boxes}"


def test_slide_mode_one_demo_per_screen_live(served):
    """The gallery's slide mode at 1280 x 720: S switches it on, PageDown moves demo by demo, every demo's controls
    and figure are within the screen, and a control still changes its demo."""
    page = served["page"]
    page.set_viewport_size({"width": 1280, "height": 720})
    try:
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.keyboard.press("Home")                                       # back to the contents
        page.keyboard.press("s")
        assert page.evaluate("document.body.classList.contains('gallery-slides')")
        page.wait_for_timeout(300)
        tops = []
        for d in gallery.DEMOS:
            page.evaluate("document.activeElement && document.activeElement.blur()")
            page.keyboard.press("PageDown")
            page.wait_for_timeout(150)
            card = page.locator(f".gallery-{d.key}")
            box = page.evaluate("""k => { const c = document.querySelector('.gallery-' + k);
                 const top = c.querySelector("[class*='demo-control-']").getBoundingClientRect().top;
                 const img = c.querySelector('img.demo-image').getBoundingClientRect();
                 return [Math.round(c.getBoundingClientRect().top), Math.round(top), Math.round(img.bottom)]; }""", d.key)
            tops.append(box[0])
            assert abs(box[0]) <= 2, f"PageDown should bring demo {d.key} to the top of the screen, its card is at {box[0]}"
            assert 0 <= box[1] and box[2] <= 720, f"demo {d.key}: controls and figure span {box[1:]} px of 720"
            if d.key in ("1c", "2c", "4b"):                                    # the three tallest demos
                card.screenshot(path=str(ARTIFACTS / f"slides_{d.key}.png"))
        d = gallery.DEMOS[-1]
        root = f".demo-{d.name}"
        ck = re.search(r"demo-control-(\w+)", page.locator(f"{root} [class*='demo-control-']").first
                       .get_attribute("class")).group(1)
        before = demo_state(page, root)
        move(page, page.locator(f"{root} .demo-control-{ck}"), f"slide mode, demo {d.key}")
        wait_new_image(page, root, before["src"], f"slide mode, demo {d.key}")
    finally:
        page.evaluate("document.body.classList.remove('gallery-slides')")
        page.set_viewport_size({"width": 1600, "height": 1900})
    assert not served["watch"].errors and not served["watch"].remote


def test_no_console_errors_and_no_remote_requests(served):
    served["page"].screenshot(path=str(ARTIFACTS / "gallery_top.png"))
    assert not served["watch"].errors, f"console errors during the gallery tests: {served['watch'].errors[:5]}"
    assert not served["watch"].remote, f"requests off this machine: {served['watch'].remote[:5]}"


# ------------------------------------------------------------------------------------ offline export
def test_offline_export_needs_no_network(browser, tmp_path):
    from export_html import export
    out = tmp_path / "html"
    pages = export(out)
    chapters_with_demos = {int(p[:2]) for p in pages}
    stems, index = list(pages), (out / "index.html").read_text(encoding="utf-8")
    for k, stem in enumerate(stems):       # titles, contents and links: each page names itself and its neighbours
        text = (out / f"{stem}.html").read_text(encoding="utf-8")
        title = (ROOT / "notebooks" / f"{stem}.ipynb").read_text(encoding="utf-8")
        title = json.loads(title)["cells"][0]["source"]
        title = ("".join(title) if isinstance(title, list) else title).splitlines()[0].lstrip("# ").strip()
        assert f"<title>{title}</title>" in text and f">{title}</a>" in index, f"{stem}: title {title!r} missing"
        anchors = re.findall(r'href="#(sec-[\w-]+)"', text)
        assert len(anchors) >= 8 and all(f'id="{a}"' in text for a in anchors), f"{stem}: contents {anchors}"
        assert text.count('href="index.html"') == 2
        for neighbour, rel in ((stems[k - 1] if k else None, "prev"), (stems[k + 1] if k + 1 < len(stems) else None,
                                                                       "next")):
            assert (f'href="{neighbour}.html" rel="{rel}"' in text) == (neighbour is not None), f"{stem}: {rel} link"
    page = browser.new_page()
    failed, remote, errors = [], [], []
    page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})"))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:")):
            r.continue_()
        else:
            remote.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    math = {}
    for stem in pages:
        page.goto((out / f"{stem}.html").as_uri(), wait_until="load")
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
        evaluate_within(page, "() => MathJax.startup.promise.then(() => true)", None, 60_000)
        math[stem] = page.evaluate("[document.querySelectorAll('mjx-container').length, "
                                   "document.querySelectorAll('[data-mjx-error], mjx-merror').length]")
        for d in gallery.DEMOS:
            if d.chapter != int(stem[:2]):
                continue
            sizes = page.evaluate(f"[...document.querySelectorAll('.celltag_demo-static-{d.name} img')]"
                                  ".map(i => i.complete ? i.naturalWidth : 0)")
            assert sizes and all(w > 0 for w in sizes), f"{stem}.html: demo {d.key} ({d.name}) has no static form"
    page.close()
    print(f"\nexport: {len(pages)} pages, failed requests {len(failed)}, blocked remote requests {len(remote)}; "
          f"math (typeset, errors) per page {math}")
    missing = {d.chapter for d in gallery.DEMOS} - chapters_with_demos
    assert not missing, f"chapters {sorted(missing)} have gallery demos but no exported page"
    assert not failed and not remote, f"failed: {failed[:5]}; remote: {remote[:5]}"
    assert not errors, f"console errors on the exported pages: {errors[:5]}"
