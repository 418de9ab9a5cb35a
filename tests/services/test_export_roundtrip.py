"""The export is the trainer's input: OASST trees survive an import/export round trip, and the
files load directly with Hugging Face `datasets` (the pairs view in TRL's reward format)."""

import json
from pathlib import Path

import pytest

from app.schemas.export import SPLITS, file_name
from app.schemas.snapshot import ExportRequest
from app.services import exports, import_oasst
from tests.factories import make_project

SHARED_TREES = Path(__file__).parents[3] / "shared" / "data" / "oasst_en_100_trees.jsonl"
SMALL_TREES = Path(__file__).parents[1] / "data" / "oasst_3_trees.jsonl"


def ranked_sibling_groups(path: Path) -> dict[str, list[str]]:
    """For each prompter message with at least two ranked assistant replies, the reply ids
    best first, read straight from the OASST file."""
    groups: dict[str, list[str]] = {}

    def walk(message: dict) -> None:
        if message.get("deleted"):
            return
        ranked = [
            r
            for r in message["replies"]
            if r["role"] == "assistant" and r.get("rank") is not None and not r.get("deleted")
        ]
        if message["role"] == "prompter" and len(ranked) >= 2:
            ranked.sort(key=lambda r: r["rank"])
            groups[f"oasst:{message['message_id']}"] = [f"oasst:{r['message_id']}" for r in ranked]
        for reply in message["replies"]:
            walk(reply)

    for line in path.read_text().splitlines():
        walk(json.loads(line)["prompt"])
    return groups


def export_all(session, db, settings, trees: Path, **request) -> Path:
    project = make_project(session)
    import_oasst.import_trees(session, project, import_oasst.parse(trees.read_text()))
    snapshot = exports.request_snapshot(
        session, settings, ExportRequest(max_prompts_per_author=None, **request)
    )
    assert exports.run_snapshot(db, settings, snapshot.id).state == "done"
    return exports.snapshot_dir(settings, snapshot.id)


@pytest.mark.skipif(not SHARED_TREES.exists(), reason="shared/data is not beside the repository")
def test_every_ranked_sibling_group_of_the_oasst_trees_comes_back_in_order(
    session, db, settings
) -> None:
    directory = export_all(session, db, settings, SHARED_TREES)
    exported = {}
    for split in SPLITS:
        for line in (directory / file_name("rm", split)).read_text().splitlines():
            record = json.loads(line)
            exported[record["prompt_id"]] = [c["id"] for c in record["completions"]]
    expected = ranked_sibling_groups(SHARED_TREES)
    assert len(expected) == 212
    assert exported == expected


def test_the_files_load_with_hugging_face_datasets(session, db, settings, monkeypatch, tmp_path):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    directory = export_all(session, db, settings, SMALL_TREES, format="both", pairs="all")
    for suffix, loader in (("jsonl", "json"), ("parquet", "parquet")):
        files = {"train": str(directory / file_name("pairs", "train", suffix))}
        train = datasets.load_dataset(loader, data_files=files, cache_dir=str(tmp_path / "c"))[
            "train"
        ]
        # TRL's reward trainer, conversational with an explicit prompt.
        assert train.column_names == ["prompt", "chosen", "rejected"]
        assert train[0]["chosen"][0]["role"] == "assistant"
        assert train[0]["prompt"][-1]["role"] == "user"
        rm = datasets.load_dataset(
            loader,
            data_files=str(directory / file_name("rm", "train", suffix)),
            cache_dir=str(tmp_path / "c"),
        )["train"]
        assert len(rm[0]["completions"]) >= 2
