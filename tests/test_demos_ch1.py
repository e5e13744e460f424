"""Demos: every control re-renders, every slider move renders a new image (callback latency is measured by
``./course bench demos``, not asserted here: a loaded machine must not fail the suite).

The demos are built with data of the same sizes as in the chapter (1,500-2,000 points, 51 frames,
21x21 score fields over a 90x90 density, ten 8x8 digits).
"""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib import schedules, toy2d  # noqa: E402
from course_lib.demos import ch1 as demos  # noqa: E402
from demo_checks import assert_demo_in_its_section, assert_slider_moves_render  # noqa: E402

RNG = np.random.RandomState(0)


def make_demos():
    lin, cos = schedules.linear_schedule(1000), schedules.cosine_schedule(1000)
    noising = demos.noising_demo(toy2d.course_gmm().sample(1500, 0), {"linear": lin.alpha_bars, "cosine": cos.alpha_bars})
    trajs = {name: (list(np.linspace(1000, 0, 51)), RNG.randn(51, 2000, 2)) for name in ("DDPM", "DDIM", "PF-ODE")}
    traj = demos.trajectory_demo(trajs)
    g = np.stack(np.meshgrid(np.linspace(-3, 3, 21), np.linspace(-3, 3, 21)), -1)
    ts = list(range(12))
    score = demos.score_field_demo(g, ts, RNG.randn(12, 21, 21, 2), RNG.randn(12, 21, 21, 2),
                                     RNG.randn(12, 90, 90), [0.1] * 12)
    digits = demos.digits_demo(list(range(26)), RNG.rand(26, 10, 8, 8) * 16, RNG.rand(26, 10, 8, 8) * 16)
    return {"noising": (noising, [{"t": t} for t in range(20, 220, 10)] + [{"schedule": "cosine"}]),
            "trajectory": (traj, [{"step": k} for k in range(1, 21)] + [{"sampler": "PF-ODE"}]),
            "score": (score, [{"i": i % 12} for i in range(1, 21)]),
            "digits": (digits, [{"i": i} for i in range(1, 21)])}


DEMOS = make_demos()


@pytest.mark.parametrize("name", list(DEMOS))
def test_every_control_changes_the_image(name):
    demo, moves = DEMOS[name]
    for key in demo.controls:
        move = next(m for m in moves if key in m)
        before = demo.image.value
        demo.set(**move)
        assert demo.image.value != before, f"moving {key} did not change the {name} demo's image"
        assert demo.image.value[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", list(DEMOS))
def test_slider_moves_each_render(name):
    assert_slider_moves_render(name, DEMOS[name][0])


def test_repr_is_short_and_classes_are_stable():
    demo, _ = DEMOS["noising"]
    assert repr(demo).startswith("<Demo noising")
    assert "demo-noising" in demo._dom_classes
    assert all(f"demo-control-{k}" in c._dom_classes for k, c in demo.controls.items())


def test_each_demo_is_presented_in_its_section():
    for fn, tag, section in ((demos.noising_demo, "1a", 1), (demos.score_field_demo, "1b", 6),
                             (demos.trajectory_demo, "1c", 7), (demos.digits_demo, "1d", 8)):
        assert_demo_in_its_section(1, section, tag, fn)


def test_static_form_is_a_figure():
    demo, _ = DEMOS["digits"]
    fig = demo.static([{"i": 0}, {"i": 10}], ncols=2)
    assert len(fig.axes) == 2


def test_bad_demo_input():
    with pytest.raises(ValueError):
        demos.trajectory_demo({"a": ([0, 1], np.zeros((2, 5, 2))), "b": ([0, 1, 2], np.zeros((3, 5, 2)))})
    demo, _ = DEMOS["digits"]
    with pytest.raises(ValueError, match="no control"):
        demo.set(speed=3)
