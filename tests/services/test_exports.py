"""Export snapshots: complete directories of valid records, deterministic, immutable,
filtered as asked, with pseudonymous people and an optional pairs view."""

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from app.errors import Conflict, InvalidInput, NotFound
from app.models import Prompt, Ranking, Snapshot, User
from app.models.base import utcnow
from app.schemas.export import RECORD_TYPES, SPLITS, Manifest, PairRecord, file_name
from app.schemas.snapshot import ExportRequest
from app.services import export_records, exports, gold, import_oasst, import_pairs
from tests.factories import (
    make_demonstration,
    make_gold_item,
    make_project,
    make_prompt,
    make_ranking,
    make_ranking_item,
    make_user,
    rank_task,
)

OASST = Path(__file__).parents[1] / "data" / "oasst_3_trees.jsonl"


def export(session, db, settings, snapshot_id: str | None = None, **request) -> Snapshot:
    snapshot = exports.request_snapshot(
        session, settings, ExportRequest(**request), snapshot_id=snapshot_id
    )
    done = exports.run_snapshot(db, settings, snapshot.id)
    session.commit()  # end the test's read transaction, so it sees what the export wrote
    return done


def records(settings, snapshot: Snapshot, kind: str, split: str | None = None) -> list[dict]:
    directory = exports.snapshot_dir(settings, snapshot.id)
    found = []
    for s in [split] if split else SPLITS:
        lines = (directory / file_name(kind, s)).read_text(encoding="utf-8").splitlines()
        found += [json.loads(line) for line in lines]
    return found


def load_oasst(session, project) -> None:
    import_oasst.import_trees(session, project, import_oasst.parse(OASST.read_text()))


@pytest.fixture
def ranked(session):
    """A project with one prompt ranked by two labelers and one demonstration."""
    project = make_project(session, annotations_per_item=2)
    author = make_user(session)
    make_ranking_item(session, project, k=4, prompt=make_prompt(session, project, author))
    first, second = make_user(session), make_user(session)
    make_ranking(session, project, first)
    make_ranking(
        session, project, second, {"answer 0": 1, "answer 1": 1, "answer 2": 2, "answer 3": 3}
    )
    make_demonstration(session, project, first, "A poem.")
    return project, author, first, second


def test_a_snapshot_has_every_file_of_every_split_a_manifest_and_a_card(
    session, db, settings, ranked
) -> None:
    snapshot = export(session, db, settings)
    names = {p.name for p in exports.snapshot_dir(settings, snapshot.id).iterdir()}
    expected = {file_name(kind, split) for kind in RECORD_TYPES for split in SPLITS}
    assert snapshot.state == "done" and names == expected | {"manifest.json", "README.md"}


def test_every_record_and_the_manifest_follow_the_export_format(
    session, db, settings, ranked
) -> None:
    snapshot = export(session, db, settings, pairs="all")
    for kind, model in [*RECORD_TYPES.items(), ("pairs", PairRecord)]:
        for record in records(settings, snapshot, kind):
            model.model_validate(record)
    directory = exports.snapshot_dir(settings, snapshot.id)
    manifest = Manifest.model_validate_json((directory / "manifest.json").read_text())
    assert (
        manifest.counts["rm.train.jsonl"]
        + manifest.counts["rm.test.jsonl"]
        + manifest.counts["rm.validation.jsonl"]
        == 2
    )
    assert set(manifest.sha256) == {p.name for p in directory.iterdir()} - {"manifest.json"}


def manifest_of(settings, snapshot: Snapshot) -> dict:
    return json.loads((exports.snapshot_dir(settings, snapshot.id) / "manifest.json").read_text())


def card_of(settings, snapshot: Snapshot) -> str:
    return (exports.snapshot_dir(settings, snapshot.id) / "README.md").read_text()


def test_the_manifest_and_the_card_report_agreement_on_items_ranked_twice(
    session, db, settings
) -> None:
    project = make_project(session, annotations_per_item=2)
    make_ranking_item(session, project, k=4)
    in_order = {f"answer {i}": i + 1 for i in range(4)}
    make_ranking(session, project, make_user(session), in_order)
    ties = {"answer 0": 1, "answer 1": 1, "answer 2": 2, "answer 3": 3}
    make_ranking(session, project, make_user(session), ties)
    make_ranking_item(session, project, k=4)
    make_ranking(session, project, make_user(session))  # an item ranked once: no comparison
    snapshot = export(session, db, settings)
    agreement = manifest_of(settings, snapshot)["agreement"]
    # Of the 6 completion pairs, 5 are ordered alike and 1 is ordered against a tie (half).
    assert agreement["rate"] == round(5.5 / 6, 4)
    assert (agreement["items"], agreement["rankings"], agreement["comparisons"]) == (1, 2, 1)
    assert "agree on 91.7% of completion pairs" in card_of(settings, snapshot)


def test_agreement_follows_the_snapshots_filters(session, db, settings, ranked) -> None:
    _project, _author, first, _second = ranked
    snapshot = export(session, db, settings, exclude_labelers=[first.username])
    assert manifest_of(settings, snapshot)["agreement"]["rate"] is None
    assert "no agreement to report" in card_of(settings, snapshot)


def test_the_manifest_checksums_match_the_files(session, db, settings, ranked) -> None:
    snapshot = export(session, db, settings)
    directory = exports.snapshot_dir(settings, snapshot.id)
    manifest = json.loads((directory / "manifest.json").read_text())
    for name, digest in manifest["sha256"].items():
        assert exports.sha256(directory / name) == digest


def test_each_labelers_own_ranking_is_kept_with_its_ties(session, db, settings, ranked) -> None:
    snapshot = export(session, db, settings)
    rankings = records(settings, snapshot, "rm")
    assert len(rankings) == 2 and len({r["labeler"] for r in rankings}) == 2
    tied = next(r for r in rankings if r["completions"][0]["rank"] == r["completions"][1]["rank"])
    assert [c["rank"] for c in tied["completions"]] == [1, 1, 2, 3]


def test_a_prompts_split_decides_the_split_of_its_records(session, db, settings, ranked) -> None:
    _project, author, *_ = ranked
    snapshot = export(session, db, settings)
    split = session.query(Prompt.split).filter(Prompt.author_id == author.id).scalar()
    for kind in RECORD_TYPES:
        assert {r["split"] for r in records(settings, snapshot, kind)} == {split}


def test_people_appear_only_as_stable_pseudonyms(session, db, settings, ranked) -> None:
    _project, author, first, _second = ranked
    one, two = export(session, db, settings), export(session, db, settings)
    text = "".join(
        (exports.snapshot_dir(settings, one.id) / file_name(k, s)).read_text()
        for k in RECORD_TYPES
        for s in SPLITS
    )
    assert first.username not in text and author.username not in text
    labelers = {r["labeler"] for r in records(settings, one, "sft")}
    assert labelers == {r["labeler"] for r in records(settings, two, "sft")}
    assert labelers <= {r["labeler"] for r in records(settings, one, "rm")}


def test_the_same_data_and_filters_give_byte_identical_files(session, db, settings, ranked) -> None:
    load_oasst(session, ranked[0])
    one = export(session, db, settings, format="both", pairs="all")
    two = export(session, db, settings, format="both", pairs="all")
    first, second = (exports.snapshot_dir(settings, s.id) for s in (one, two))
    names = sorted(p.name for p in first.iterdir() if p.name != "manifest.json")
    assert any(n.endswith(".parquet") for n in names)
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_the_parquet_files_hold_the_same_records_as_the_json_lines(
    session, db, settings, ranked
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    load_oasst(session, ranked[0])
    snapshot = export(session, db, settings, format="both", pairs="all")
    directory = exports.snapshot_dir(settings, snapshot.id)
    for kind in [*RECORD_TYPES, "pairs"]:
        for split in SPLITS:
            lines = (directory / file_name(kind, split)).read_text().splitlines()
            table = pq.read_table(directory / file_name(kind, split, "parquet"))
            assert table.to_pylist() == [json.loads(line) for line in lines], (kind, split)


def test_an_existing_snapshot_id_is_refused_and_the_snapshot_is_untouched(
    session, db, settings, ranked
) -> None:
    snapshot = export(session, db, settings, snapshot_id="weekly")
    manifest = exports.snapshot_dir(settings, "weekly") / "manifest.json"
    before = manifest.read_bytes()
    with pytest.raises(Conflict, match="never overwritten"):
        exports.request_snapshot(session, settings, ExportRequest(), snapshot_id="weekly")
    assert manifest.read_bytes() == before and snapshot.state == "done"


def test_a_directory_in_the_way_is_refused(session, settings, ranked) -> None:
    exports.snapshot_dir(settings, "taken").mkdir(parents=True)
    with pytest.raises(Conflict, match="exists already"):
        exports.request_snapshot(session, settings, ExportRequest(), snapshot_id="taken")
    assert session.get(Snapshot, "taken") is None


def test_a_bad_snapshot_id_is_refused(session, settings) -> None:
    with pytest.raises(InvalidInput, match="snapshot id"):
        exports.request_snapshot(session, settings, ExportRequest(), snapshot_id="../etc")


def test_a_failed_export_leaves_no_directory_behind(
    session, db, settings, ranked, monkeypatch
) -> None:
    def broken(*_args, **_kwargs):
        yield from ()
        raise OSError("disk full")

    monkeypatch.setattr(export_records, "rm_records", broken)
    snapshot = export(session, db, settings, snapshot_id="broken")
    assert snapshot.state == "failed" and "disk full" in snapshot.error
    assert list(exports.exports_dir(settings).iterdir()) == []


def test_an_unknown_project_or_labeler_is_refused(session, settings) -> None:
    with pytest.raises(NotFound, match="no project 99"):
        exports.request_snapshot(session, settings, ExportRequest(project_id=99))
    with pytest.raises(InvalidInput, match="no user named nobody"):
        exports.request_snapshot(session, settings, ExportRequest(exclude_labelers=["nobody"]))


def test_an_empty_time_window_is_refused() -> None:
    with pytest.raises(ValueError, match="time window is empty"):
        ExportRequest(since="2026-02-01T00:00:00", until="2026-01-01T00:00:00")


def test_the_time_window_selects_records_by_their_creation(session, db, settings, ranked) -> None:
    session.execute(update(Ranking).values(created_at=datetime(2020, 1, 1)))
    session.commit()
    snapshot = export(session, db, settings, since="2021-01-01T00:00:00")
    assert records(settings, snapshot, "rm") == []
    assert len(records(settings, snapshot, "sft")) == 1


def test_filters_by_project(session, db, settings, ranked) -> None:
    other = make_project(session)
    load_oasst(session, other)
    snapshot = export(session, db, settings, project_id=ranked[0].id)
    assert len(records(settings, snapshot, "rm")) == 2


def test_labeler_groups_and_excluded_labelers(session, db, settings, ranked) -> None:
    project, _author, first, _second = ranked
    load_oasst(session, project)
    imported = export(session, db, settings, labeler_groups=["imported"])
    assert {r["labeler_group"] for r in records(settings, imported, "rm")} == {"imported"}
    training = export(session, db, settings, labeler_groups=["training"])
    assert len(records(settings, training, "rm")) == 2
    without = export(
        session, db, settings, labeler_groups=["training"], exclude_labelers=[first.username]
    )
    assert len(records(settings, without, "rm")) == 1
    assert records(settings, without, "sft") == []


IN_ORDER = {f"answer {i}": i + 1 for i in range(4)}
REVERSED = {f"answer {i}": 4 - i for i in range(4)}


def rank_items(session, project, orders: list[tuple[User, dict[str, int]]], items: int) -> None:
    """`items` new items, each ranked by every (labeler, order) given."""
    for _ in range(items):
        make_ranking_item(session, project, k=4)
        for labeler, order in orders:
            make_ranking(session, project, labeler, order)


def test_labelers_agreeing_less_than_asked_are_left_out(session, db, settings) -> None:
    project = make_project(session, annotations_per_item=3)
    first, second, contrary = make_user(session), make_user(session), make_user(session)
    orders = [(first, IN_ORDER), (second, IN_ORDER), (contrary, REVERSED)]
    rank_items(session, project, orders, items=5)
    # 10 comparisons each: first and second agree on half of theirs, contrary on none.
    snapshot = export(session, db, settings, min_labeler_agreement=0.4)
    kept = {r["labeler"] for r in records(settings, snapshot, "rm")}
    everyone = {r["labeler"] for r in records(settings, export(session, db, settings), "rm")}
    assert len(everyone) == 3 and len(kept) == 2 and kept < everyone
    assert {r["completions"][0]["text"] for r in records(settings, snapshot, "rm")} == {"answer 0"}
    assert "1 labeler was left out for agreeing" in card_of(settings, snapshot)


def test_labelers_with_too_few_compared_rankings_are_kept(session, db, settings) -> None:
    project = make_project(session, annotations_per_item=2)
    first, contrary = make_user(session), make_user(session)
    rank_items(session, project, [(first, IN_ORDER), (contrary, REVERSED)], items=9)
    snapshot = export(session, db, settings, min_labeler_agreement=0.5)
    assert len(records(settings, snapshot, "rm")) == 18
    assert "0 labelers were left out" in card_of(settings, snapshot)


def test_held_out_labelers_are_left_out_unless_asked_for(session, db, settings, ranked) -> None:
    _project, _author, first, _second = ranked
    session.execute(update(User).where(User.id == first.id).values(labeler_group="held_out"))
    session.commit()
    default = export(session, db, settings)
    assert len(records(settings, default, "rm")) == 1
    assert records(settings, default, "sft") == []
    held_out = export(session, db, settings, labeler_groups=["held_out"])
    assert [r["labeler_group"] for r in records(settings, held_out, "rm")] == ["held_out"]


def test_work_flagged_too_fast_is_left_out_unless_asked_for(session, db, settings, ranked) -> None:
    _project, _author, first, _second = ranked
    session.execute(update(Ranking).where(Ranking.labeler_id == first.id).values(too_fast=True))
    session.commit()
    assert len(records(settings, export(session, db, settings), "rm")) == 1
    kept = export(session, db, settings, include_too_fast=True)
    assert len(records(settings, kept, "rm")) == 2


def test_prompts_waiting_for_a_personal_data_review_are_left_out(
    session, db, settings, ranked
) -> None:
    session.execute(update(Prompt).values(review_state="held"))
    session.commit()
    snapshot = export(session, db, settings)
    assert all(records(settings, snapshot, kind) == [] for kind in ("rm", "sft", "ppo"))


def test_gold_items_and_their_prompts_are_left_out_unless_asked_for(
    session, db, settings, ranked
) -> None:
    project, _author, first, _second = ranked
    task = gold.serve(session, project, first, make_gold_item(session, project))
    rank_task(session, task, first, [1, 2, 3, 4])
    default = export(session, db, settings)
    assert len(records(settings, default, "rm")) == 2
    assert len(records(settings, default, "ppo")) == 1
    with_gold = export(session, db, settings, include_gold=True)
    assert len(records(settings, with_gold, "rm")) == 3


def test_each_author_keeps_only_their_earliest_prompts(session, db, settings) -> None:
    project = make_project(session)
    author = make_user(session)
    for n in range(3):
        make_prompt(session, project, author, instruction=f"prompt {n}")
    snapshot = export(session, db, settings, max_prompts_per_author=2)
    kept = [r["context"][-1]["content"] for r in records(settings, snapshot, "ppo")]
    assert kept == ["prompt 0", "prompt 1"]


def test_the_pairs_view_has_every_ordered_pair_or_best_against_the_rest(
    session, db, settings
) -> None:
    project = make_project(session)
    make_ranking_item(session, project, k=4)
    make_ranking(session, project, make_user(session), {f"answer {i}": i + 1 for i in range(4)})
    every = records(settings, export(session, db, settings, pairs="all"), "pairs")
    best = records(settings, export(session, db, settings, pairs="best_vs_rest"), "pairs")
    assert len(every) == 6 and len(best) == 3
    assert {p["chosen"][0]["content"] for p in best} == {"answer 0"}
    assert every[0]["prompt"][-1]["role"] == "user"


def test_tied_answers_give_no_pair(session, db, settings) -> None:
    project = make_project(session)
    make_ranking_item(session, project, k=4)
    ties = {"answer 0": 1, "answer 1": 1, "answer 2": 2, "answer 3": 2}
    make_ranking(session, project, make_user(session), ties)
    assert len(records(settings, export(session, db, settings, pairs="all"), "pairs")) == 4


def test_imported_pairs_come_back_as_the_same_pairs(session, db, settings) -> None:
    project = make_project(session)
    pair = {"prompt": "Why?", "chosen": "Because.", "rejected": "No."}
    import_pairs.import_pairs(session, project, import_pairs.parse(json.dumps(pair)))
    [exported] = records(settings, export(session, db, settings, pairs="all"), "pairs")
    assert exported == {
        "prompt": [{"role": "user", "content": "Why?"}],
        "chosen": [{"role": "assistant", "content": "Because."}],
        "rejected": [{"role": "assistant", "content": "No."}],
    }


# --- Stuck snapshots -------------------------------------------------------------------------


def stale(session, snapshot_id: str, state: str) -> None:
    """Make a snapshot look abandoned: its heartbeat (or its request) is long past."""
    past = utcnow() - exports.STALE_AFTER - timedelta(seconds=1)
    session.execute(
        update(Snapshot)
        .where(Snapshot.id == snapshot_id)
        .values(state=state, heartbeat_at=past, created_at=past)
    )
    session.commit()


def test_a_running_snapshot_that_stopped_beating_is_failed_and_its_files_removed(
    session, db, settings
) -> None:
    exports.request_snapshot(session, settings, ExportRequest(), snapshot_id="crashed")
    stale(session, "crashed", "running")
    partial = exports.exports_dir(settings) / ".crashed.partial"
    partial.mkdir(parents=True)
    (partial / "rm.train.jsonl").write_text("{}\n")
    assert exports.fail_stuck_snapshots(db, settings) == ["crashed"]
    session.commit()
    snapshot = session.get(Snapshot, "crashed")
    session.refresh(snapshot)
    assert snapshot.state == "failed" and "Start a new snapshot" in snapshot.error
    assert not partial.exists()


def test_a_queued_snapshot_that_never_started_is_failed(session, db, settings) -> None:
    exports.request_snapshot(session, settings, ExportRequest(), snapshot_id="lost")
    stale(session, "lost", "queued")
    assert exports.fail_stuck_snapshots(db, settings) == ["lost"]


def test_a_snapshot_that_beats_or_is_finished_is_left_alone(session, db, settings) -> None:
    exports.request_snapshot(session, settings, ExportRequest(), snapshot_id="busy")
    session.execute(
        update(Snapshot).where(Snapshot.id == "busy").values(state="running", heartbeat_at=utcnow())
    )
    session.commit()
    export(session, db, settings, snapshot_id="old")
    stale(session, "old", "done")
    assert exports.fail_stuck_snapshots(db, settings) == []


def test_an_export_failed_as_stuck_while_it_runs_stops_and_leaves_nothing(
    session, db, settings, ranked, monkeypatch
) -> None:
    def declared_stuck(*_args, **_kwargs):
        with db.session() as other:
            stale(other, "slow", "running")
        assert exports.fail_stuck_snapshots(db, settings) == ["slow"]
        yield from ()

    monkeypatch.setattr(export_records, "rm_records", declared_stuck)
    snapshot = export(session, db, settings, snapshot_id="slow")
    assert snapshot.state == "failed" and snapshot.error == exports.STUCK_MESSAGE
    assert list(exports.exports_dir(settings).iterdir()) == []


def test_a_snapshot_is_run_once(session, db, settings) -> None:
    snapshot = export(session, db, settings)
    with pytest.raises(Conflict, match="run already"):
        exports.run_snapshot(db, settings, snapshot.id)
