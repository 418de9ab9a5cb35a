"""User-disjoint train / validation / test splits (InstructGPT split its prompts by user ID).

Every prompt has an *author key*: the labeler who wrote it ("user:<id>"), the original user of
an imported prompt ("ext:<user id>"), or, for an imported prompt whose user is unknown, the
prompt itself ("prompt:<source id>"). The first time a project sees an author, the author is
assigned to the split that is furthest below its share of authors (project ratios); the
assignment is stored and never changes, so all of an author's prompts share one split forever
and adding data later never moves a prompt. The split of a prompt decides the split of its
demonstrations and rankings.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import Project, Prompt, SplitAssignment
from app.models.base import utcnow
from app.schemas.export import SPLITS

CHUNK = 500


def author_key(
    user_id: int | None = None, external_user_id: str | None = None, source_id: str | None = None
) -> str:
    """The key that decides a prompt's split: its author, else its original user, else itself."""
    if user_id is not None:
        return f"user:{user_id}"
    if external_user_id:
        return f"ext:{external_user_id}"
    if source_id:
        return f"prompt:{source_id}"
    raise ValueError("a prompt needs an author, an original user id or a source id")


def ratios(project: Project) -> dict[str, float]:
    return {
        "train": project.split_train,
        "validation": project.split_validation,
        "test": project.split_test,
    }


def choose_split(shares: dict[str, float], counts: dict[str, int]) -> str:
    """The split furthest below its share once one more author joins (ties: train first).
    A split whose share is 0 never has the largest deficit, so it never gets an author."""
    total = sum(counts.values()) + 1
    return max(SPLITS, key=lambda s: (shares[s] * total - counts[s], -SPLITS.index(s)))


def assign(session: Session, project: Project, keys: Sequence[str]) -> dict[str, str]:
    """The split of each author key, assigning new authors in the order given (no commit).

    Concurrent transactions that meet the same new author agree: the insert skips an existing
    row and the stored assignment is read back.
    """
    wanted = list(dict.fromkeys(keys))
    known = _stored(session, project.id, wanted)
    new = [k for k in wanted if k not in known]
    if not new:
        return known
    counts = dict.fromkeys(SPLITS, 0)
    counts.update(
        session.execute(
            select(SplitAssignment.split, func.count())
            .where(SplitAssignment.project_id == project.id)
            .group_by(SplitAssignment.split)
        ).all()
    )
    shares = ratios(project)
    rows = []
    for key in new:
        split = choose_split(shares, counts)
        counts[split] += 1
        rows.append({"project_id": project.id, "author_key": key, "split": split})
    for start in range(0, len(rows), CHUNK):
        _insert_missing(session, rows[start : start + CHUNK])
    known.update(_stored(session, project.id, new))
    return known


def _stored(session: Session, project_id: int, keys: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(keys), CHUNK):
        found.update(
            session.execute(
                select(SplitAssignment.author_key, SplitAssignment.split).where(
                    SplitAssignment.project_id == project_id,
                    SplitAssignment.author_key.in_(keys[start : start + CHUNK]),
                )
            ).all()
        )
    return found


def _insert_missing(session: Session, rows: list[dict[str, object]]) -> None:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    now = utcnow()
    statement = dialect.insert(SplitAssignment).values([{**r, "created_at": now} for r in rows])
    session.execute(statement.on_conflict_do_nothing())


def place(session: Session, project: Project, prompts: Iterable[Prompt]) -> None:
    """Set the split of new prompts from their author keys (no commit)."""
    prompts = list(prompts)
    splits = assign(session, project, [p.author_key for p in prompts])
    for prompt in prompts:
        prompt.split = splits[prompt.author_key]


# --- The check -----------------------------------------------------------------------------


@dataclass
class SplitReport:
    project_id: int
    authors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    prompts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    # Authors whose prompts are in more than one split, or not in their assigned split.
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(session: Session, project_id: int | None = None) -> list[SplitReport]:
    """Prove that no author has prompts in two splits, one report per project."""
    per_author = (
        select(
            Prompt.project_id,
            Prompt.author_key,
            func.min(Prompt.split),
            func.max(Prompt.split),
            func.count(),
            SplitAssignment.split,
        )
        .outerjoin(
            SplitAssignment,
            (SplitAssignment.project_id == Prompt.project_id)
            & (SplitAssignment.author_key == Prompt.author_key),
        )
        .group_by(Prompt.project_id, Prompt.author_key, SplitAssignment.split)
        .order_by(Prompt.project_id, Prompt.author_key)
    )
    projects = select(Project.id).order_by(Project.id)
    if project_id is not None:
        per_author = per_author.where(Prompt.project_id == project_id)
        projects = projects.where(Project.id == project_id)
    reports = {pid: SplitReport(pid) for pid in session.scalars(projects)}
    for pid, key, lowest, highest, prompts, assigned in session.execute(per_author):
        report = reports[pid]
        if lowest != highest:
            report.problems.append(f"author {key} has prompts in {lowest} and {highest}")
        elif assigned != lowest:
            report.problems.append(
                f"author {key} is assigned to {assigned} but has prompts in {lowest}"
            )
        else:
            report.authors[lowest] += 1
            report.prompts[lowest] += prompts
    return list(reports.values())
