"""The built model: services only load it; a missing or mismatched one is a clear error; the build is
idempotent and never replaces a directory that is not a model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from shared.domain.classification import Classifier, ModelError
from shared.domain.classification.artefact import MANIFEST
from tools.model.build import build_model


@pytest.fixture
def model_copy(model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    return copy


def test_no_model_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no model at .*/absent: run `make model`"):
        Classifier.load(tmp_path / "absent")


@pytest.mark.parametrize(("field", "what"), [("features", "features"), ("rules_digest", "rule terms"),
                                             ("format", "format")])
def test_a_model_built_for_other_code_is_refused(model_copy: Path, field: str, what: str) -> None:
    manifest = json.loads((model_copy / MANIFEST).read_text())
    manifest[field] = 0 if field == "format" else "something-else"
    (model_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=f"built for other {what} .*: run `make model`"):
        Classifier.load(model_copy)


def test_a_damaged_model_is_refused(model_copy: Path) -> None:
    (model_copy / "danger.npz").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="incomplete or damaged"):
        Classifier.load(model_copy)


def test_the_build_skips_a_model_of_the_same_inputs(model_copy: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in model_copy.iterdir()}
    said: list[str] = []
    build_model(model_copy, say=said.append)
    assert said and "up to date" in said[0] and "nothing to do" in said[0]
    assert {p.name: p.stat().st_mtime_ns for p in model_copy.iterdir()} == before


def test_the_build_never_replaces_a_directory_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ModelError, match="holds other files"):
        build_model(tmp_path, say=lambda _line: None)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_intake_splits_by_markers_alone_without_a_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from services.intake import main as intake

    monkeypatch.setattr(intake.service, "settings", intake.service.settings.model_copy(
        update={"model_dir": tmp_path / "absent"}))
    intake._topics.cache_clear()
    try:
        assert list(intake.matter_topics(["楼上漏水", "老板拖欠工资"])) == [0, 1]
        [warning] = [r for r in caplog.records if r.name == "services.intake.main"]
        assert warning.levelname == "WARNING" and "markers alone" in warning.getMessage()
        assert "no model at" in warning.getMessage()
    finally:
        intake._topics.cache_clear()
