import json
from pathlib import Path

import pytest

from tests.trainer.conftest import colour_world, demonstration, ranking, write_snapshot
from trainer.snapshot import Snapshot, SnapshotError


def test_reads_demonstrations_rankings_and_prompts_by_split(snapshot: Path) -> None:
    opened = Snapshot(snapshot)
    world = colour_world()
    assert len(opened.demonstrations("train")) == sum(r["split"] == "train" for r in world["sft"])
    assert opened.demonstrations("validation")[0].messages[-1].role == "assistant"
    assert opened.rankings("train")[0].k >= 3
    assert opened.prompts("validation")[0].context[-1].role == "user"


def test_a_ranking_makes_pairs_between_different_ranks_only(tmp_path: Path) -> None:
    record = ranking(1, "q", [("a", 1), ("b", 2), ("c", 2), ("d", 3)])
    opened = Snapshot(write_snapshot(tmp_path, {"rm": [record]}))
    assert sorted(opened.rankings("train")[0].ordered_pairs()) == [
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 3),
        (2, 3),
    ]


def test_a_file_absent_from_the_snapshot_reads_as_empty(tmp_path: Path) -> None:
    opened = Snapshot(write_snapshot(tmp_path, {"sft": [demonstration(1, "q", "a")]}))
    assert opened.rankings("train") == []


def test_a_manifest_without_schema_version_is_refused(tmp_path: Path) -> None:
    write_snapshot(tmp_path, {"sft": []}, schema_version=None)
    with pytest.raises(SnapshotError, match=r"has no schema_version"):
        Snapshot(tmp_path)


def test_an_unknown_schema_version_is_refused_with_the_supported_one(tmp_path: Path) -> None:
    write_snapshot(tmp_path, {"sft": []}, schema_version=2)
    with pytest.raises(SnapshotError, match=r"schema_version 2.*reads schema version 1 only"):
        Snapshot(tmp_path)


def test_a_directory_without_manifest_is_not_a_snapshot(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match=r"has no manifest\.json"):
        Snapshot(tmp_path)


def test_a_file_changed_after_export_is_refused(tmp_path: Path) -> None:
    write_snapshot(tmp_path, {"sft": [demonstration(1, "q", "a")]})
    path = tmp_path / "sft.train.jsonl"
    path.write_text(path.read_text().replace('"a"', '"b"'))
    with pytest.raises(SnapshotError, match="does not match the sha256"):
        Snapshot(tmp_path).demonstrations("train")


def test_a_malformed_record_names_its_line(tmp_path: Path) -> None:
    write_snapshot(tmp_path, {"sft": [demonstration(1, "q", "a")]})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["sha256"] = {}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "sft.train.jsonl").write_text('{"id": "d1"}\n')
    with pytest.raises(SnapshotError, match="line 1: not a sft record"):
        Snapshot(tmp_path).demonstrations("train")
