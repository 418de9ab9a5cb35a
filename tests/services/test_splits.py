"""Splits by author: one author, one split, forever; shares follow the project's ratios."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from app.models import Prompt
from app.schemas.admin import ProjectSettingsIn
from app.schemas.export import SPLITS
from app.services import imports, projects, splits
from tests.factories import make_project, make_prompt, make_user


def import_prompts(session, project, user_ids: list[str | None]) -> list[Prompt]:
    """One imported prompt (with K = 4 completions) per entry, by that original user."""
    lines = []
    for n, user_id in enumerate(user_ids, start=1):
        prompt = {"instruction": f"question {n} of {len(user_ids)} by {user_id}"}
        if user_id is not None:
            prompt["user_id"] = user_id
        completions = [{"text": f"answer {i}"} for i in range(4)]
        lines.append(json.dumps({"prompt": prompt, "completions": completions}))
    items = imports.import_ranking_items(
        session, project, imports.parse_jsonl("\n".join(lines))
    ).items
    return [item.prompt for item in items]


def split_of_each_author(session, project) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    rows = session.execute(
        select(Prompt.author_key, Prompt.split).where(Prompt.project_id == project.id)
    )
    for key, split in rows:
        found.setdefault(key, set()).add(split)
    return found


def test_all_prompts_of_a_labeler_share_one_split(session) -> None:
    project = make_project(session)
    author = make_user(session)
    prompts = [make_prompt(session, project, author, instruction=f"p{i}") for i in range(5)]
    assert len({p.split for p in prompts}) == 1
    assert prompts[0].author_key == f"user:{author.id}"


def test_imported_prompts_are_split_by_their_original_user(session) -> None:
    project = make_project(session)
    prompts = import_prompts(session, project, ["u1", "u2", "u1", "u3", "u1"])
    by_user = {p.external_user_id: p.split for p in prompts}
    assert all(p.split == by_user[p.external_user_id] for p in prompts)
    assert prompts[0].author_key == "ext:u1"


def test_an_imported_prompt_without_a_user_is_its_own_author(session) -> None:
    project = make_project(session)
    first, second = import_prompts(session, project, [None, None])
    assert first.author_key != second.author_key
    assert first.author_key.startswith("prompt:jsonl:")


def test_new_authors_fill_the_splits_by_the_project_ratios(session) -> None:
    project = make_project(session)
    import_prompts(session, project, [f"user-{i}" for i in range(20)])
    report = splits.check(session, project.id)[0]
    assert report.authors == {"train": 16, "validation": 2, "test": 2}


def test_a_split_with_ratio_zero_gets_no_author(session) -> None:
    project = make_project(session, split_train=0.5, split_validation=0.5, split_test=0)
    prompts = import_prompts(session, project, [f"user-{i}" for i in range(9)])
    assert {p.split for p in prompts} == {"train", "validation"}


def test_changing_the_ratios_never_moves_an_author(session) -> None:
    project = make_project(session)
    before = {p.external_user_id: p.split for p in import_prompts(session, project, ["a", "b"])}
    settings = ProjectSettingsIn(name=project.name, split_train=0, split_validation=0, split_test=1)
    projects.update_project(session, project.id, settings)
    later = import_prompts(session, project, ["a", "b", "c"])
    assert {p.external_user_id: p.split for p in later} == {**before, "c": "test"}


def test_the_check_passes_on_consistent_data(session) -> None:
    project = make_project(session)
    import_prompts(session, project, ["a", "b", "a", None])
    [report] = splits.check(session, project.id)
    assert report.ok and sum(report.prompts.values()) == 4 and sum(report.authors.values()) == 3


def test_the_check_reports_an_author_in_two_splits(session) -> None:
    project = make_project(session)
    first, _second = import_prompts(session, project, ["a", "a"])
    other = "test" if first.split != "test" else "train"
    session.execute(update(Prompt).where(Prompt.id == first.id).values(split=other))
    session.commit()
    [report] = splits.check(session, project.id)
    assert not report.ok
    assert "author ext:a has prompts in" in report.problems[0]


def test_the_check_covers_every_project_when_none_is_named(session) -> None:
    make_project(session)
    make_project(session)
    assert len(splits.check(session)) == 2


@given(
    shares=st.lists(st.integers(0, 10), min_size=3, max_size=3).filter(lambda w: sum(w) > 0),
    authors=st.integers(1, 200),
)
def test_each_split_stays_within_one_author_of_its_share(shares: list[int], authors: int) -> None:
    ratios = {s: w / sum(shares) for s, w in zip(SPLITS, shares, strict=True)}
    counts = dict.fromkeys(SPLITS, 0)
    for n in range(1, authors + 1):
        counts[splits.choose_split(ratios, counts)] += 1
        assert all(abs(counts[s] - ratios[s] * n) < 1 for s in SPLITS)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.lists(st.sampled_from(["ann", "bo", "cy", "di", "ed", "fay", None]), min_size=1),
        min_size=1,
        max_size=4,
    )
)
def test_splits_stay_disjoint_under_any_insertion_order(session, batches) -> None:
    project = make_project(session)
    seen: dict[str, str] = {}
    for batch in batches:
        for prompt in import_prompts(session, project, batch):
            # An author keeps the split of their first prompt, whatever comes later.
            assert seen.setdefault(prompt.author_key, prompt.split) == prompt.split
    assert all(len(found) == 1 for found in split_of_each_author(session, project).values())
    assert splits.check(session, project.id)[0].ok
