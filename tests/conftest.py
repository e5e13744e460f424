"""Shared settings of the course's test suite (``./course test``).

- registers the ``slow`` marker: tests that execute whole notebooks; skip them with
  ``-m "not slow"``;
- makes ``tools/`` importable, so tests call the tools' functions directly.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: executes whole notebooks (deselect with -m 'not slow')")
