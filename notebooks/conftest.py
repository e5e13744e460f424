"""pytest hooks for the strict nbval run over the chapters (``./course test``).

nbval re-executes every chapter ``.ipynb`` and compares each cell's outputs with the committed
ones. These hooks make that comparison stable without weakening it: they only skip output types
whose content is random by construction, and they give the kernel the same environment that
``tools/execute_chapter.py`` (``./course run NN``) used to produce the references.
"""
import os

import pytest
from nbval.plugin import IPyNbCell

from tolerant import outputs_agree

# Safety net: references are produced on the CPU (`./course test` sets this already). The nbval
# kernel inherits the environment of this pytest process.
os.environ["COURSE_DEVICE"] = "cpu"

# Output types nbval must not compare, added to nbval's own list (metadata, traceback,
# execution_count, image/png, image/jpeg, application/vnd.jupyter.widget-view+json, ...).
# The text/plain form of the same output is still compared wherever it exists.
SKIP_COMPARE = (
    "application/vnd.jupyter.widget-view+json",   # widget model ids are random on every run
    "application/vnd.jupyter.widget-state+json",  # widget state: model ids and live values
    "text/html",  # to_jshtml animation players (and other HTML reprs) embed random element ids
)

# ipykernel selects the inline backend only when MPLBACKEND is unset, and a headless shell or CI
# may export MPLBACKEND=agg: the kernel gets the inline backend explicitly, as in JupyterLab and
# in tools/execute_chapter.py, so figures are produced as they were recorded.
KERNEL_ENV = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "COURSE_DEVICE": "cpu"}


def pytest_collectstart(collector):
    """Extend nbval's skip list for each notebook file it collects."""
    if collector.path.suffix == ".ipynb" and hasattr(collector, "skip_compare"):
        collector.skip_compare += tuple(k for k in SKIP_COMPARE if k not in collector.skip_compare)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """Start nbval's kernel (done in the setup of a notebook's first cell) with KERNEL_ENV,
    and restore this process's environment afterwards."""
    if item.path.suffix != ".ipynb":
        yield
        return
    saved = {k: os.environ.get(k) for k in KERNEL_ENV}
    os.environ.update(KERNEL_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# How fresh outputs are compared with the committed ones (README, "Which machines reproduce the outputs"):
# "strict" (nbval's own comparison, the default on x86-64) or "tolerant" (``./course test --tolerant``, the default
# elsewhere): strict first, and where it fails, tools/tolerant.py's rule (numbers to within one unit of their last
# printed digit, statistics printed as "x ± s" to within s).
COMPARE = os.environ.get("COURSE_COMPARE", "strict")
if COMPARE not in ("strict", "tolerant"):
    raise ValueError(f"COURSE_COMPARE must be 'strict' or 'tolerant', got {COMPARE!r}")

if COMPARE == "tolerant":
    _strict_compare = IPyNbCell.compare_outputs

    def _tolerant_compare(self, test, ref, skip_compare=None):
        if _strict_compare(self, test, ref, skip_compare):
            return True
        problems = outputs_agree(ref, test, skip_compare or self.parent.skip_compare, self.sanitize)
        if not problems:
            self.comparison_traceback = []
            return True
        self.comparison_traceback += ["tolerant comparison (COURSE_COMPARE=tolerant) fails too:", *problems]
        return False

    IPyNbCell.compare_outputs = _tolerant_compare
