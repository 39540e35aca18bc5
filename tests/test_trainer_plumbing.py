"""The shared Trainer plumbing: model folders appear whole or not at all."""

import pytest

from labkit.modelcache import atomic_model_dir


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


def test_training_arguments_one_place_for_every_arguments_class(tmp_path):
    from sentence_transformers import SentenceTransformerTrainingArguments
    from transformers import Seq2SeqTrainingArguments, TrainingArguments

    from labkit.errors import ParameterError
    from labkit.training import training_arguments

    by_steps = training_arguments(tmp_path, max_steps=200, seed=3, progress=False)
    assert type(by_steps) is TrainingArguments and by_steps.max_steps == 200
    assert by_steps.logging_steps == 4 and by_steps.save_strategy == "no" and by_steps.seed == 3
    for cls in (Seq2SeqTrainingArguments, SentenceTransformerTrainingArguments):
        args = training_arguments(
            tmp_path,
            epochs=2,
            steps_per_epoch=100,
            seed=0,
            progress=False,
            args_class=cls,
            learning_rate=1e-4,
        )
        assert type(args) is cls and args.num_train_epochs == 2 and args.logging_steps == 4
        assert args.learning_rate == 1e-4 and args.report_to == []
    with pytest.raises(ParameterError, match="max_steps"):
        training_arguments(tmp_path, max_steps=10, epochs=1, seed=0, progress=False)
    with pytest.raises(ParameterError, match="epochs"):
        training_arguments(tmp_path, seed=0, progress=False)
