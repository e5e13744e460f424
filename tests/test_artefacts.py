"""The shipped artefacts (``data/artefacts/``, ``course_lib.artefacts``; defined in ``course_lib.recipes``): each one was made by the shipped code from
the shipped checkpoints.

The proof is a redraw: ``./course artefacts --check --all`` runs, in a fresh process in the pinned numerical mode,
the first batch of every artefact again and compares it with the stored rows (bit for bit on x86-64 CPUs with AVX2;
on other CPUs at least 90% of the rows identical). The other tests check the bookkeeping: every artefact is
registered, loads, and is refused (with the command that remakes it) once its checkpoints change.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from course_lib import artefacts, checkpoints, recipes, runtime  # noqa: F401  (recipes registers the artefacts)

ROOT = Path(__file__).resolve().parent.parent


def test_every_shipped_file_is_a_registered_artefact_that_loads():
    shipped = sorted(p.stem for p in artefacts.ARTEFACT_DIR.glob("*.npz"))
    assert shipped == sorted(artefacts.REGISTRY), (
        f"data/artefacts/ holds {shipped}, the registry {sorted(artefacts.REGISTRY)}: make the missing ones with "
        f"./course artefacts NAME, delete files no artefact makes")
    for name in shipped:
        bank = artefacts.load(name)
        assert bank.meta["name"] == name and bank.meta["pinned"], f"{name} was not made by ./course artefacts"
        assert set(bank.meta["checkpoints"]) == set(artefacts.entry(name).checkpoints)
        assert len(bank) > 0 and all(len(a) > 0 for a in bank.values())


def test_first_batches_are_redrawn_identically():
    """The heavy one: redraw the first batch of every artefact (about 25 s on 2 cores)."""
    proc = subprocess.run([sys.executable, "-m", "course_lib.recipes", "artefacts", "--check", "--all"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    print(proc.stdout)
    assert proc.returncode == 0, f"an artefact is not reproduced by the shipped code:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.count("first batch identical") == len(artefacts.REGISTRY)
    if runtime.pinnable():
        assert proc.stdout.count("[exact (pinned mode)]") == len(artefacts.REGISTRY)


def test_an_artefact_from_another_checkpoint_is_refused(monkeypatch):
    name = sorted(artefacts.REGISTRY)[0]
    ck = artefacts.entry(name).checkpoints[0]
    real = checkpoints.read_manifest()
    changed = {**real, ck: {**real[ck], "sha256": "0" * 64}}
    monkeypatch.setattr(checkpoints, "read_manifest", lambda *a, **k: changed)
    with pytest.raises(artefacts.ArtefactError, match=rf"another {ck} checkpoint.*\./course artefacts {name}"):
        artefacts.load(name)


def test_missing_and_unknown_artefacts_name_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(artefacts, "ARTEFACT_DIR", tmp_path)
    name = sorted(artefacts.REGISTRY)[0]
    with pytest.raises(artefacts.ArtefactError, match=rf"missing; make it with: \./course artefacts {name}"):
        artefacts.load(name)
    with pytest.raises(artefacts.ArtefactError, match="unknown artefact 'nope'"):
        artefacts.entry("nope")


@pytest.fixture
def toy_artefact(monkeypatch, tmp_path):
    """A tiny registered artefact (no checkpoint), stored in a temporary folder."""
    def make(first_batch):
        rows = 2 if first_batch else 6
        return {"tokens": np.arange(rows * 3, dtype=np.int16).reshape(rows, 3),
                "values": np.arange(rows) / 10, "text": np.array(["a", "bb", "ccc", "d", "e", "f"][:rows])}

    monkeypatch.setattr(artefacts, "ARTEFACT_DIR", tmp_path)
    monkeypatch.setitem(artefacts.REGISTRY, "toy", artefacts.Artefact("toy", 0, "a toy", (), make))
    monkeypatch.setattr(runtime, "pinned", lambda: True)
    artefacts.make("toy")
    return tmp_path / "toy.npz"


def test_check_passes_on_the_made_artefact_and_finds_a_changed_row(toy_artefact):
    assert artefacts.check("toy") == []
    with np.load(toy_artefact) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["tokens"][1, 2] += 1                       # one token of the first batch
    np.savez_compressed(toy_artefact, **arrays)
    assert artefacts.check("toy") == ["tokens: 1 of 2 rows differ"]
    meta = json.loads(str(arrays["__meta__"]))
    assert meta["pinned"] and meta["checkpoints"] == {}


def test_making_outside_the_pinned_mode_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(artefacts, "ARTEFACT_DIR", tmp_path)
    monkeypatch.setattr(runtime, "pinned", lambda: False)
    monkeypatch.setattr(runtime, "pinnable", lambda: True)
    with pytest.raises(artefacts.ArtefactError, match="pinned numerical mode"):
        artefacts.make(sorted(artefacts.REGISTRY)[0])
