"""Shared settings of the course's test suite (``./course test``).

- registers the ``slow`` marker: tests that execute whole notebooks; skip them with
  ``-m "not slow"``;
- provides the ``one_torch_thread`` fixture (tiny models on one thread).
"""
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: executes whole notebooks (deselect with -m 'not slow')")


@pytest.fixture
def one_torch_thread():
    """Tiny models run fastest on one thread (and do not fight other jobs for the cores); the previous thread
    count is restored afterwards. Used by the chapter-4 unit tests (``pytestmark = usefixtures(...)``)."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
