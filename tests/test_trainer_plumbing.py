"""The shared Trainer plumbing: model folders appear whole or not at all."""
import pytest

from labkit.training import atomic_model_dir


def test_atomic_model_dir_replaces_the_folder_on_success(tmp_path):
    final = tmp_path / "models" / "m"
    final.mkdir(parents=True)
    (final / "old.txt").write_text("old")
    with atomic_model_dir(final) as out:
        (out / "config.json").write_text("{}")
        assert not (final / "config.json").exists()  # nothing visible before the rename
    assert sorted(p.name for p in final.iterdir()) == ["config.json"]
    assert [p.name for p in final.parent.iterdir()] == ["m"]  # scratch folder removed


def test_atomic_model_dir_leaves_nothing_behind_on_failure(tmp_path):
    final = tmp_path / "m"
    with pytest.raises(RuntimeError):
        with atomic_model_dir(final) as out:
            (out / "model.safetensors").write_text("half")
            raise RuntimeError("killed mid-save")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []
