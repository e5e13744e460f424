"""Checkpoint manifest: hash verification and clear errors naming the retrain command."""
import json

import pytest
import torch

from course_lib import checkpoints, mlp


def _save(tmp_path):
    manifest = tmp_path / "manifest.json"
    model = mlp.EpsMLP(mlp.EpsMLPConfig(hidden=16, emb_size=8))
    entry = checkpoints.save_checkpoint("tiny_model", model.state_dict(), model.config.to_dict(), {"loss": 0.5},
                                        1.23, manifest=manifest)
    return manifest, model, entry


def test_roundtrip(tmp_path):
    manifest, model, entry = _save(tmp_path)
    sd, cfg, e = checkpoints.load_checkpoint("tiny_model", manifest=manifest)
    m2 = mlp.build(cfg)
    m2.load_state_dict(sd)
    x, t = torch.randn(4, 2), torch.full((4,), 10.0)
    torch.testing.assert_close(m2(x, t), model(x, t))
    assert e["retrain"] == "./course retrain tiny_model" and e["metrics"] == {"loss": 0.5}
    assert len(e["sha256"]) == 64 and e["train_seconds"] == 1.2


def test_corrupt_file_names_retrain_command(tmp_path):
    manifest, _, entry = _save(tmp_path)
    path = tmp_path / entry["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"corrupt.*\./course retrain tiny_model"):
        checkpoints.load_checkpoint("tiny_model", manifest=manifest)


def test_missing_file_names_retrain_command(tmp_path):
    manifest, _, entry = _save(tmp_path)
    (tmp_path / entry["file"]).unlink()
    with pytest.raises(ValueError, match=r"missing.*\./course retrain tiny_model"):
        checkpoints.load_checkpoint("tiny_model", manifest=manifest)


def test_unknown_name(tmp_path):
    manifest, _, _ = _save(tmp_path)
    with pytest.raises(ValueError, match="unknown checkpoint"):
        checkpoints.load_checkpoint("nope", manifest=manifest)


def test_corrupt_manifest(tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{not json")
    with pytest.raises(ValueError, match="not a valid checkpoint manifest"):
        checkpoints.load_checkpoint("x", manifest=manifest)


def test_bad_config():
    with pytest.raises(ValueError, match="bad EpsMLP config"):
        mlp.build({"dim": 2, "wings": 3})


def test_shipped_checkpoints_verify():
    """Every checkpoint in data/manifest.json exists, matches its hash and records how to retrain it."""
    entries = checkpoints.read_manifest()
    assert entries, "data/manifest.json lists no checkpoints"
    for name, e in entries.items():
        sd, cfg, _ = checkpoints.load_checkpoint(name)
        assert e["retrain"] == f"./course retrain {name}"
        # issue 5's limit: each shipped checkpoint at most 8 MB (the chapter-4 MoE models hold 16 experts)
        assert e["bytes"] <= 8_000_000, f"{name} is {e['bytes']} bytes; keep checkpoints at most 8 MB"
        assert e["metrics"] and e["train_seconds"] > 0
    assert json.loads(checkpoints.MANIFEST.read_text())["checkpoints"]


def test_shipped_checkpoints_fit_the_clone_budget():
    """Every clone carries the checkpoints: about 120 MB in all, and no file the manifest does not list."""
    entries = checkpoints.read_manifest()
    total = sum(e["bytes"] for e in entries.values())
    assert total <= 120_000_000, f"the checkpoints take {total / 1e6:.1f} MB; retire unused ones"
    files = {p.name for p in (checkpoints.MANIFEST.parent / "checkpoints").glob("*.pt")}
    assert files == {f"{name}.pt" for name in entries}
