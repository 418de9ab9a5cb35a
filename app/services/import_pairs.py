"""Import chosen/rejected preference pairs, the format of Anthropic's HH-RLHF and of most
public preference sets. One JSON object per line, in one of these shapes:

- HH-RLHF: `{"chosen": "\\n\\nHuman: …\\n\\nAssistant: …", "rejected": "…"}`: two whole
  dialogues that share every turn but the last assistant turn;
- conversational: `chosen` and `rejected` as `[{role, content}]` lists, likewise;
- explicit prompt: `{"prompt": …, "chosen": …, "rejected": …}`, the prompt a string or a
  message list ending with a user turn, the answers strings or one assistant message each.

An optional `user_id` names the prompt's original author (it decides the split). The shared
dialogue prefix becomes the prompt (its last user turn) and its context; the two answers
become a ranking item with K = 2, ranked chosen first by the account "imported:pairs".
Lines with the same dialogue prefix share one prompt. All or nothing per file, idempotent.
"""

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import Session

from app.models import Item, Project, Prompt
from app.services import imports, splits

SOURCE = "pairs"
HH_TURN = re.compile(r"\n\n(Human|Assistant): ")
HH_ROLES = {"Human": "user", "Assistant": "assistant"}

Messages = list[dict[str, str]]


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


Dialogue = str | list[MessageIn]


class PairIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Dialogue | None = None
    chosen: Dialogue
    rejected: Dialogue
    user_id: Annotated[str, StringConstraints(max_length=100)] | None = None
    language: str = Field(default="en", max_length=16)


@dataclass
class Preference:
    line: int
    messages: Messages  # the conversation the answers respond to, ending with a user turn
    chosen: str
    rejected: str
    user_id: str | None
    language: str


@dataclass
class PairsReport:
    rankings: int = 0
    prompts: int = 0
    skipped: int = 0  # pairs imported before


def parse(text: str) -> list[Preference]:
    """Parse and check every line; all problems are reported by line number."""
    preferences, errors = [], []
    for line, pair in imports.parse_jsonl(text, PairIn):
        try:
            preferences.append(_preference(line, pair))
        except ValueError as exc:
            errors.append(f"line {line}: {exc}")
    imports.raise_if(errors, "line")
    return preferences


def _preference(line: int, pair: PairIn) -> Preference:
    if pair.prompt is None:
        chosen, rejected = _dialogue(pair.chosen), _dialogue(pair.rejected)
        shared = 0  # turns both share, leaving at least one turn each
        while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
            shared += 1
        if len(chosen) != shared + 1 or len(rejected) != shared + 1:
            raise ValueError("chosen and rejected must differ in their last turn only")
        context, answers = chosen[:shared], [chosen[-1], rejected[-1]]
    else:
        context = _dialogue(pair.prompt, single_role="user")
        answers = [_answer(pair.chosen, "chosen"), _answer(pair.rejected, "rejected")]
    for answer in answers:
        if answer["role"] != "assistant":
            raise ValueError("the chosen and rejected turns must be the assistant's")
        if not answer["content"].strip():
            raise ValueError("an answer is empty")
    if not context or context[-1]["role"] != "user":
        raise ValueError("the shared dialogue must end with a user (Human) turn")
    if answers[0]["content"] == answers[1]["content"]:
        raise ValueError("chosen and rejected are the same answer")
    return Preference(
        line, context, answers[0]["content"], answers[1]["content"], pair.user_id, pair.language
    )


def _dialogue(value: Dialogue, single_role: str = "assistant") -> Messages:
    """Messages from a message list, an HH-style "Human: … Assistant: …" string, or a plain
    string (one message of `single_role`)."""
    if isinstance(value, list):
        return [m.model_dump() for m in value]
    parts = HH_TURN.split(value if value.startswith("\n\n") else "\n\n" + value)
    if len(parts) == 1:
        return [{"role": single_role, "content": value.strip()}]
    if parts[0].strip():
        raise ValueError("text before the first 'Human:' or 'Assistant:' turn")
    return [
        {"role": HH_ROLES[speaker], "content": content.strip()}
        for speaker, content in zip(parts[1::2], parts[2::2], strict=True)
    ]


def _answer(value: Dialogue, name: str) -> dict[str, str]:
    messages = _dialogue(value)
    if len(messages) != 1:
        raise ValueError(f"with an explicit prompt, {name} must be one assistant answer")
    return messages[0]


def import_pairs(session: Session, project: Project, preferences: list[Preference]) -> PairsReport:
    """Create the prompts and K = 2 ranking items of the pairs, in one commit."""
    items = {imports.content_id(SOURCE, [p.messages, p.chosen, p.rejected]): p for p in preferences}
    done = imports.existing_ids(session, Item, project, list(items))
    new = {key: p for key, p in items.items() if key not in done}
    report = PairsReport(skipped=len(preferences) - len(new))

    prompt_ids = {key: imports.content_id(SOURCE, p.messages) for key, p in new.items()}
    existing = imports.existing_ids(session, Prompt, project, list(prompt_ids.values()))
    prompts: dict[str, Prompt] = {}
    for key, preference in new.items():
        prompt_id = prompt_ids[key]
        if prompt_id not in existing and prompt_id not in prompts:
            prompts[prompt_id] = imports.new_prompt(
                project,
                prompt_id,
                preference.messages,
                language=preference.language,
                user_id=preference.user_id,
            )
    splits.place(session, project, prompts.values())
    session.add_all(prompts.values())
    session.flush()
    report.prompts = len(prompts)

    labeler = imports.imported_labeler(session, SOURCE)
    for key, preference in new.items():
        prompt = prompts.get(prompt_ids[key]) or session.get(Prompt, existing[prompt_ids[key]])
        assert prompt is not None
        answers = [
            imports.RankedAnswer(text=preference.chosen, rank=1),
            imports.RankedAnswer(text=preference.rejected, rank=2),
        ]
        imports.add_ranked_item(session, project, prompt, key, answers, labeler)
        report.rankings += 1
    session.commit()
    return report
