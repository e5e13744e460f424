"""Checks shared by the demo tests of every chapter (``test_demos_ch*.py``): slider moves render, each control
changes the image and the caption, the static form is a figure that leaves the controls as they were."""
import matplotlib.pyplot as plt

def assert_slider_moves_render(name, demo, moves: int = 20):
    """Move the demo's first slider ``moves`` times, each to a new value (what a key press does): every move must
    run the callback once and leave a new PNG."""
    slider = next(c for c in demo.controls.values() if hasattr(c, "max"))
    demo.timings_ms.clear()
    for _ in range(moves):
        before = demo.image.value
        nxt = slider.value + slider.step
        slider.value = nxt if nxt <= slider.max else slider.min
        assert demo.image.value != before and demo.image.value[:8] == b"\x89PNG\r\n\x1a\n", \
            f"{name}: a slider move did not render a new image"
    assert len(demo.timings_ms) == moves, f"{name}: {len(demo.timings_ms)} callbacks for {moves} moves"

def assert_each_control_changes_image_and_caption(name, demo):
    """Move each control alone, from the demo's current state, to another of its values: the image and the
    caption must both change (and the image stay a PNG)."""
    for key, c in demo.controls.items():
        before, cap = demo.image.value, demo.caption.value
        other = next(v for v in (c.options if hasattr(c, "options") else range(c.min, c.max + 1))
                     if v != c.value)
        demo.set(**{key: other})
        assert demo.image.value != before, f"moving {key} did not change the {name} demo's image"
        assert demo.caption.value != cap, f"moving {key} did not change the {name} demo's caption"
        assert demo.image.value[:8] == b"\x89PNG\r\n\x1a\n"

def assert_static_form(demo):
    """``demo.static`` at the first slider's two ends gives a two-panel figure and restores the controls."""
    key = next(k for k, c in demo.controls.items() if hasattr(c, "max"))
    before = demo.values()
    fig = demo.static([{key: 0}, {key: demo.controls[key].max}], ncols=2)
    try:
        assert len(fig.axes) == 2
        assert demo.values() == before, "static() must restore the controls"
    finally:
        plt.close(fig)


def assert_demo_in_its_section(chapter: int, section: int, tag: str, builder) -> None:
    """The chapter introduces demo ``tag`` (e.g. "2a") in section ``section``: that section of the chapter's source
    names "Demo 2a" and calls the builder, whose docstring starts with "(Demo 2a)"."""
    import re
    from pathlib import Path
    src = next((Path(__file__).resolve().parent.parent / "notebooks").glob(f"{chapter:02d}_*.py")).read_text()
    parts = re.split(r"^# ## (\d+)\. ", src, flags=re.M)
    body = dict(zip(parts[1::2], parts[2::2])).get(str(section), "")
    assert builder.__doc__.startswith(f"(Demo {tag})"), f"{builder.__name__}: the docstring should start (Demo {tag})"
    assert f"Demo {tag}" in body and f"demos.{builder.__name__}(" in body, (
        f"chapter {chapter}, section {section} should present Demo {tag} with demos.{builder.__name__}")


def assert_demo_classes(demos: dict) -> None:
    """Each demo of ``{name: (demo, moves)}`` carries the DOM classes the browser tests and the lecture CSS use:
    ``demo-<name>`` on the demo, ``demo-control-<key>`` on each control, and a short repr."""
    for name, (demo, _) in demos.items():
        assert f"demo-{name}" in demo._dom_classes
        assert repr(demo).startswith(f"<Demo {name}")
        assert all(f"demo-control-{k}" in c._dom_classes for k, c in demo.controls.items())
