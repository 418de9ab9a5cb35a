"""Import OpenAssistant conversation trees (one tree per line, as in the OASST exports).

- Every prompter turn becomes a prompt; the turns before it become its dialogue context.
- Assistant replies of a prompter turn that carry a `rank` become the completions of one
  ranking item, ranked (rank 0 first) by the account "imported:oasst". Ranks of prompter
  turns (which user message is better) are not preferences over answers and are not imported.
- The best human-written reply (the top-ranked one, or the only reply) becomes a demonstration.
- Tree and message ids are kept: prompts, items and completions have external ids
  "oasst:<message id>".
- The split follows the message's `user_id` when the file has one; otherwise the whole tree
  counts as one author, so a conversation and its continuations never straddle two splits.
- Deleted messages and everything below them are left out.

All or nothing per file and idempotent, like every import (see app/services/imports.py).
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from app.models import Demonstration, Project, Prompt
from app.services import imports, splits

SOURCE = "oasst"
ROLES = {"prompter": "user", "assistant": "assistant"}


class OasstMessage(BaseModel):
    """A message as OASST exports it; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    message_id: str = Field(min_length=1, max_length=100)
    parent_id: str | None = None
    user_id: str | None = Field(default=None, max_length=100)
    text: str = Field(min_length=1)
    role: Literal["prompter", "assistant"]
    lang: str = Field(default="en", max_length=16)
    review_count: int | None = None
    review_result: bool | None = None
    deleted: bool = False
    rank: int | None = Field(default=None, ge=0)
    synthetic: bool = False
    model_name: str | None = Field(default=None, max_length=200)
    emojis: dict[str, int] | None = None
    labels: dict[str, Any] | None = None
    detoxify: dict[str, Any] | None = None
    created_date: str | None = None
    replies: list["OasstMessage"] = Field(default_factory=list)


class OasstTree(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_tree_id: str = Field(min_length=1, max_length=100)
    tree_state: str | None = None
    prompt: OasstMessage


@dataclass
class Turn:
    """One prompter turn to import, with what hangs below it."""

    line: int
    tree_id: str
    message: OasstMessage
    messages: list[dict[str, str]]  # the conversation up to and including this turn
    ranked: list[OasstMessage] = field(default_factory=list)
    demonstration: OasstMessage | None = None


@dataclass
class OasstReport:
    prompts: int = 0
    rankings: int = 0
    demonstrations: int = 0
    skipped: int = 0  # prompter turns imported before


def parse(text: str) -> list[tuple[int, OasstTree]]:
    return imports.parse_jsonl(text, OasstTree)


def turns(trees: list[tuple[int, OasstTree]]) -> list[Turn]:
    """Every prompter turn of the trees, checked; bad structure is reported per line."""
    found, errors = [], []
    for line, tree in trees:
        if tree.prompt.role != "prompter":
            errors.append(f"line {line}: the first message of a tree must be the prompter's")
            continue
        for turn in _walk(line, tree.message_tree_id, tree.prompt, []):
            problem = _check(turn)
            if problem:
                errors.append(f"line {line}: message {turn.message.message_id}: {problem}")
            found.append(turn)
    imports.raise_if(errors, "line")
    return found


def _walk(
    line: int, tree_id: str, message: OasstMessage, before: list[dict[str, str]]
) -> Iterator[Turn]:
    if message.deleted:
        return
    messages = [*before, {"role": ROLES[message.role], "content": message.text}]
    replies = [r for r in message.replies if not r.deleted]
    if message.role == "prompter":
        answers = [r for r in replies if r.role == "assistant"]
        ranked = sorted((r for r in answers if r.rank is not None), key=lambda r: r.rank or 0)
        # The best answer is known when the answers are ranked, or when there is only one.
        best = ranked[0] if ranked else (answers[0] if len(answers) == 1 else None)
        demonstration = best if best is not None and not best.synthetic else None
        yield Turn(line, tree_id, message, messages, ranked, demonstration)
    for reply in replies:
        yield from _walk(line, tree_id, reply, messages)


def _check(turn: Turn) -> str | None:
    wrong_role = [r for r in turn.message.replies if r.role == "prompter"]
    if wrong_role:
        return f"a prompter turn is answered by another prompter turn ({wrong_role[0].message_id})"
    if len(turn.ranked) == 1:
        return "only one reply has a rank; a ranking needs at least 2 ranked replies (K >= 2)"
    return None


def import_trees(
    session: Session, project: Project, trees: list[tuple[int, OasstTree]]
) -> OasstReport:
    """Create the prompts, ranking items and demonstrations of the trees, in one commit."""
    planned = turns(trees)
    external = {f"{SOURCE}:{t.message.message_id}": t for t in planned}
    done = imports.existing_ids(session, Prompt, project, list(external))
    new = {key: turn for key, turn in external.items() if key not in done}
    report = OasstReport(skipped=len(done))

    prompts = {
        key: imports.new_prompt(
            project,
            key,
            turn.messages,
            language=turn.message.lang,
            user_id=turn.message.user_id,
            author_source=f"{SOURCE}-tree:{turn.tree_id}",
        )
        for key, turn in new.items()
    }
    splits.place(session, project, prompts.values())
    session.add_all(prompts.values())
    session.flush()
    labeler = imports.imported_labeler(session, SOURCE)
    for key, turn in new.items():
        prompt = prompts[key]
        report.prompts += 1
        if turn.ranked:
            answers = [
                imports.RankedAnswer(
                    text=r.text,
                    rank=(r.rank or 0) + 1,
                    model=r.model_name if r.synthetic else None,
                    external_id=f"{SOURCE}:{r.message_id}",
                )
                for r in turn.ranked
            ]
            imports.add_ranked_item(session, project, prompt, key, answers, labeler)
            report.rankings += 1
        if turn.demonstration is not None:
            session.add(
                Demonstration(
                    prompt_id=prompt.id,
                    labeler_id=labeler.id,
                    kind="dialogue" if len(turn.messages) > 1 else "single",
                    messages=[
                        *turn.messages,
                        {"role": "assistant", "content": turn.demonstration.text},
                    ],
                    time_spent_ms=None,
                )
            )
            report.demonstrations += 1
    session.commit()
    return report
