"""Screening tests: candidates answer researchers' items, scores are computed, an admin decides.

InstructGPT chose its labelers by a screening test: agreement with researchers on rankings and
on flagging sensitive content, and the quality of demonstrations for sensitive prompts. Here a
project's screening test is its items with purpose "screening" (gold.py adds them) plus the pass
thresholds in ScreeningTest. A candidate takes them in order through the normal ranking and
demonstration pages and submission services; the scores are:

* agreement: pairwise agreement (agreement.py) of the candidate's rankings with the gold ones;
* flag accuracy: the share of (completion, flag) decisions that match the gold flags;
* demonstration grade: the mean of the admin's 1-7 grades of the candidate's demonstrations.

A candidate passes when every score they have meets its threshold; the admin still decides:
approve (labeler, training group), held-out (labeler, held-out group) or reject (deactivated).
"""

from dataclasses import dataclass

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from app.errors import Conflict, InvalidInput, NotFound
from app.models import (
    Demonstration,
    GoldAnswer,
    Item,
    Project,
    Ranking,
    RankingEntry,
    ScreeningAttempt,
    ScreeningTest,
    Task,
    User,
)
from app.models.base import utcnow
from app.schemas.labeling import FLAGS
from app.schemas.quality import StatsFilter
from app.schemas.screening import GoldItemIn, ScreeningPromptIn, ScreeningSettingsIn
from app.services import agreement, audit, gold, quality_report
from app.services.projects import get_project

NO_GOLD = (
    "This screening test has no items with researcher answers (a gold ranking or gold flags) "
    "yet, so it could not be scored. Add some before candidates take it."
)


# --- The test ---------------------------------------------------------------------------------


def get_test(session: Session, project: Project) -> ScreeningTest | None:
    return session.scalar(select(ScreeningTest).where(ScreeningTest.project_id == project.id))


def save_settings(
    session: Session, project: Project, data: ScreeningSettingsIn, actor: User | None = None
) -> ScreeningTest:
    test = get_test(session, project) or ScreeningTest(project_id=project.id)
    new = data.model_dump()
    before, after = audit.changes({field: getattr(test, field) for field in new}, new)
    for field, value in new.items():
        setattr(test, field, value)
    session.add(test)
    if after:
        audit.record(session, actor, "screening.settings_saved", project, before, after)
    session.commit()
    return test


def _ensure_test(session: Session, project: Project) -> None:
    """Adding the first item creates the test, with the default thresholds (no commit)."""
    if get_test(session, project) is None:
        session.add(ScreeningTest(project_id=project.id, **ScreeningSettingsIn().model_dump()))


def add_ranking_item(session: Session, project: Project, data: GoldItemIn) -> Item:
    """A ranking item with a gold ranking, gold flags or both."""
    gold.check_k(project, len(data.completions))
    _ensure_test(session, project)
    return gold.add_gold_item(session, project, data, "screening")


def add_prompt(session: Session, project: Project, data: ScreeningPromptIn) -> Item:
    """A prompt to answer with a demonstration, graded by an admin."""
    _ensure_test(session, project)
    return gold.add_demonstration_prompt(session, project, data)


def test_items(session: Session, project: Project) -> list[Item]:
    return list(
        session.scalars(
            select(Item)
            .where(Item.project_id == project.id, Item.purpose == "screening")
            .options(joinedload(Item.prompt), selectinload(Item.completions))
            .order_by(Item.id)
        )
    )


def _has_gold(session: Session, project: Project) -> bool:
    return bool(
        session.scalar(
            select(func.count())
            .select_from(GoldAnswer)
            .join(Item, Item.id == GoldAnswer.item_id)
            .where(Item.project_id == project.id, Item.purpose == "screening")
        )
    )


def open_tests(session: Session) -> list[Project]:
    """Projects whose screening test a candidate can take."""
    found = session.scalars(
        select(Project)
        .join(ScreeningTest, ScreeningTest.project_id == Project.id)
        .order_by(Project.id)
    )
    return [project for project in found if _has_gold(session, project)]


# --- The candidate's side ---------------------------------------------------------------------


def attempt_of(session: Session, candidate: User) -> ScreeningAttempt | None:
    return session.scalar(
        select(ScreeningAttempt).where(ScreeningAttempt.candidate_id == candidate.id)
    )


def start(session: Session, project: Project, candidate: User) -> ScreeningAttempt:
    """Begin the project's screening test (a candidate takes one test, once)."""
    if candidate.role != "candidate":
        raise InvalidInput("Only candidates take screening tests.")
    if existing := attempt_of(session, candidate):
        if existing.project_id != project.id:
            raise Conflict("You have started another project's screening test already.")
        return existing
    if get_test(session, project) is None:
        raise NotFound(f"Project {project.name!r} has no screening test.")
    if not _has_gold(session, project):
        raise InvalidInput(NO_GOLD)
    attempt = ScreeningAttempt(candidate_id=candidate.id, project_id=project.id)
    session.add(attempt)
    session.commit()
    return attempt


def next_task(session: Session, candidate: User) -> Task | None:
    """The candidate's unfinished screening task, or the next item of the test; when none is
    left the attempt is finished (ready for review) and None is returned."""
    attempt = attempt_of(session, candidate)
    if attempt is None:
        raise Conflict("Start a screening test first.")
    if attempt.state != "started":
        return None
    active = session.scalar(
        select(Task).where(Task.labeler_id == candidate.id, Task.state == "active").limit(1)
    )
    if active is not None:
        return active
    project = get_project(session, attempt.project_id)
    remaining = session.scalar(
        select(Item)
        .where(
            Item.project_id == project.id,
            Item.purpose == "screening",
            ~exists().where(Task.item_id == Item.id, Task.labeler_id == candidate.id),
        )
        .options(joinedload(Item.prompt), selectinload(Item.completions))
        .order_by(Item.id)
        .limit(1)
    )
    if remaining is None:
        attempt.state, attempt.finished_at = "finished", utcnow()
        session.commit()
        return None
    return gold.serve(session, project, candidate, remaining)


def progress(session: Session, candidate: User) -> tuple[int, int]:
    """(items answered, items in the test) for the candidate's attempt."""
    attempt = attempt_of(session, candidate)
    if attempt is None:
        return 0, 0
    total = session.scalar(
        select(func.count()).where(
            Item.project_id == attempt.project_id, Item.purpose == "screening"
        )
    )
    done = session.scalar(
        select(func.count())
        .select_from(Task)
        .join(Item, Item.id == Task.item_id)
        .where(
            Task.labeler_id == candidate.id,
            Task.state == "submitted",
            Item.purpose == "screening",
        )
    )
    return done or 0, total or 0


# --- Scores and the admin's review ------------------------------------------------------------


@dataclass(frozen=True)
class CompletionAnswer:
    text: str
    gold_rank: int | None
    gold_flags: list[str] | None
    rank: int | None
    flags: list[str]


@dataclass(frozen=True)
class RankingAnswer:
    prompt: str
    completions: list[CompletionAnswer]  # by position
    agreement: float | None  # with the gold ranking, on this item


@dataclass(frozen=True)
class DemonstrationAnswer:
    demonstration_id: int
    prompt: str
    answer: str
    grade: int | None


@dataclass(frozen=True)
class Scores:
    agreement: float | None
    flag_accuracy: float | None
    demonstration_grade: float | None
    ungraded: int
    passed: bool | None  # None until every demonstration is graded


@dataclass(frozen=True)
class Review:
    attempt: ScreeningAttempt
    candidate: User
    project: Project
    test: ScreeningTest
    scores: Scores
    rankings: list[RankingAnswer]
    demonstrations: list[DemonstrationAnswer]


def get_attempt(session: Session, attempt_id: int) -> ScreeningAttempt:
    attempt = session.get(ScreeningAttempt, attempt_id)
    if attempt is None:
        raise NotFound(f"There is no screening attempt {attempt_id}.")
    return attempt


def list_attempts(session: Session, project: Project) -> list[tuple[ScreeningAttempt, User]]:
    rows = session.execute(
        select(ScreeningAttempt, User)
        .join(User, User.id == ScreeningAttempt.candidate_id)
        .where(ScreeningAttempt.project_id == project.id)
        .order_by(ScreeningAttempt.id.desc())
    )
    return [(attempt, user) for attempt, user in rows]


def review(session: Session, attempt_id: int) -> Review:
    """The candidate's answers next to the researchers', with the scores."""
    attempt = get_attempt(session, attempt_id)
    project = get_project(session, attempt.project_id)
    test = get_test(session, project)
    assert test is not None
    candidate = session.get(User, attempt.candidate_id)
    assert candidate is not None
    items = [i for i in test_items(session, project) if i.kind == "ranking"]
    answers = gold.answers(session, {i.id for i in items})
    comparisons = _gold_comparisons(session, project, candidate, answers)
    rankings = _ranking_answers(session, items, answers, candidate, comparisons)
    demonstrations = _demonstration_answers(session, project, candidate)
    scores = _scores(test, comparisons, rankings, demonstrations)
    return Review(attempt, candidate, project, test, scores, rankings, demonstrations)


def _ranking_answers(
    session: Session,
    items: list[Item],
    answers: dict[int, GoldAnswer],
    candidate: User,
    comparisons: agreement.Comparisons,
) -> list[RankingAnswer]:
    given = {
        r.item_id: r
        for r in session.scalars(
            select(Ranking)
            .where(Ranking.labeler_id == candidate.id, Ranking.item_id.in_([i.id for i in items]))
            .options(selectinload(Ranking.entries))
        )
    }
    per_item = {
        int(item): agreement.agreement_rate(agreement.subset(comparisons, comparisons.item == item))
        for item in set(comparisons.item.tolist())
    }
    result = []
    for item in items:
        answer, ranking = answers.get(item.id), given.get(item.id)
        entries: dict[int, RankingEntry] = (
            {e.completion_id: e for e in ranking.entries} if ranking else {}
        )
        completions = []
        for c in item.completions:
            entry = entries.get(c.id)
            completions.append(
                CompletionAnswer(
                    text=c.text,
                    gold_rank=answer.ranks[c.position] if answer and answer.ranks else None,
                    gold_flags=answer.flags[c.position] if answer and answer.flags else None,
                    rank=entry.rank if entry else None,
                    flags=[f for f in FLAGS if entry and getattr(entry, f)],
                )
            )
        result.append(RankingAnswer(item.prompt.render(), completions, per_item.get(item.id)))
    return result


def _gold_comparisons(
    session: Session, project: Project, candidate: User, answers: dict[int, GoldAnswer]
) -> agreement.Comparisons:
    """Each of the candidate's rankings compared with the gold one."""
    filters = StatsFilter(labeler_ids=[candidate.id])
    table, _flags = quality_report.load_rankings(session, project.id, filters, ("screening",))
    return gold.with_gold(table, answers)[1]


def _demonstration_answers(
    session: Session, project: Project, candidate: User
) -> list[DemonstrationAnswer]:
    rows = session.execute(
        select(Demonstration, Item)
        .join(Task, Task.id == Demonstration.task_id)
        .join(Item, Item.id == Task.item_id)
        .where(
            Demonstration.labeler_id == candidate.id,
            Item.project_id == project.id,
            Item.purpose == "screening",
        )
        .options(joinedload(Item.prompt))
        .order_by(Item.id)
    )
    return [
        DemonstrationAnswer(
            demonstration_id=d.id,
            prompt=item.prompt.render(),
            answer="\n\n".join(m["content"] for m in d.messages[1:]),
            grade=d.admin_grade,
        )
        for d, item in rows
    ]


def _scores(
    test: ScreeningTest,
    comparisons: agreement.Comparisons,
    rankings: list[RankingAnswer],
    demonstrations: list[DemonstrationAnswer],
) -> Scores:
    rate = agreement.agreement_rate(comparisons)
    flag_checks = [
        (flag in c.flags) == (flag in c.gold_flags)
        for r in rankings
        for c in r.completions
        if c.gold_flags is not None and c.rank is not None
        for flag in FLAGS
    ]
    flag_accuracy = sum(flag_checks) / len(flag_checks) if flag_checks else None
    grades = [d.grade for d in demonstrations if d.grade is not None]
    grade = sum(grades) / len(grades) if grades else None
    ungraded = len(demonstrations) - len(grades)
    checks = [
        rate is None or rate * 100 >= test.min_agreement_percent,
        flag_accuracy is None or flag_accuracy * 100 >= test.min_flag_accuracy_percent,
        grade is None or grade >= test.min_demonstration_grade,
    ]
    return Scores(rate, flag_accuracy, grade, ungraded, None if ungraded else all(checks))


def grade_demonstration(
    session: Session, attempt_id: int, demonstration_id: int, grade: int, actor: User | None = None
) -> Demonstration:
    attempt = get_attempt(session, attempt_id)
    demonstration = session.get(Demonstration, demonstration_id)
    if demonstration is None or demonstration.labeler_id != attempt.candidate_id:
        raise NotFound(f"There is no demonstration {demonstration_id} in this screening test.")
    if not 1 <= grade <= 7:
        raise InvalidInput("Grades go from 1 to 7.")
    before = {"admin_grade": demonstration.admin_grade}
    demonstration.admin_grade = grade
    audit.record(session, actor, "screening.graded", demonstration, before, {"admin_grade": grade})
    session.commit()
    return demonstration


DECISIONS = {"approve": "approved", "held_out": "held_out", "reject": "rejected"}


def decide(
    session: Session, attempt_id: int, decision: str, actor: User | None = None
) -> ScreeningAttempt:
    """Approve (labeler, training group), hold out (labeler, held-out group) or reject
    (account deactivated) a candidate who finished the test."""
    if decision not in DECISIONS:
        raise InvalidInput(f"There is no decision {decision!r}; use approve, held_out or reject.")
    attempt = get_attempt(session, attempt_id)
    if attempt.state == "started":
        raise Conflict("The candidate has not finished the screening test yet.")
    if attempt.state != "finished":
        raise Conflict(f"This candidate was {attempt.state.replace('_', ' ')} already.")
    candidate = session.get(User, attempt.candidate_id)
    assert candidate is not None
    before = _standing(candidate, attempt)
    if decision == "reject":
        candidate.is_active = False
    else:
        candidate.role = "labeler"
        candidate.labeler_group = "training" if decision == "approve" else "held_out"
    attempt.state, attempt.decided_at = DECISIONS[decision], utcnow()
    audit.record(
        session, actor, "screening.decided", candidate, before, _standing(candidate, attempt)
    )
    session.commit()
    return attempt


def _standing(candidate: User, attempt: ScreeningAttempt) -> dict[str, object]:
    return {
        "role": candidate.role,
        "labeler_group": candidate.labeler_group,
        "is_active": candidate.is_active,
        "screening": attempt.state,
    }
