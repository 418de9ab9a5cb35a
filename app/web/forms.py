"""Turn browser form fields into the API's shapes, so one set of rules checks both."""

import re

from starlette.datastructures import FormData

from app.schemas.labeling import FLAGS


def _clean(value: object) -> str:
    """Browsers send line breaks in text boxes as CRLF; stored text uses plain newlines."""
    return value.replace("\r\n", "\n").replace("\r", "\n") if isinstance(value, str) else ""


def _text(form: FormData, name: str) -> str:
    return _clean(form.get(name))


def _texts(form: FormData, name: str) -> list[str]:
    return [_clean(value) for value in form.getlist(name)]


def prompt_fields(form: FormData) -> dict[str, object]:
    queries, responses = _texts(form, "pair_query"), _texts(form, "pair_response")
    pairs = [
        {"query": q, "response": r}
        for q, r in zip(queries, responses, strict=False)
        if q.strip() or r.strip()
    ]
    kind = _text(form, "kind")
    return {
        "kind": kind,
        "category": _text(form, "category"),
        "language": _text(form, "language") or "en",
        "instruction": _text(form, "instruction"),
        "use_case": _text(form, "use_case") or None,
        # Blank pair rows are ignored; pairs typed under another kind are an error.
        "few_shot_pairs": pairs,
        "submission_key": _text(form, "submission_key") or None,
        "person_names": [
            n.strip() for n in re.split(r"[,\n]", _text(form, "person_names")) if n.strip()
        ],
        "confirm_warnings": _text(form, "confirm_warnings") == "on",
    }


def demonstration_fields(form: FormData) -> dict[str, object]:
    kind = _text(form, "kind")
    if kind != "dialogue":
        return {"kind": kind, "answer": _text(form, "answer")}
    roles, contents = _texts(form, "turn_role"), _texts(form, "turn_content")
    used = _texts(form, "turn_suggestion")
    turns, suggestions = [], []
    for i, (role, content) in enumerate(zip(roles, contents, strict=False)):
        if not content.strip():
            continue
        if i < len(used) and used[i].strip().isdigit():
            suggestions.append({"turn": len(turns), "job_id": int(used[i])})
        turns.append({"role": role, "content": content})
    return {"kind": kind, "turns": turns, "suggestions": suggestions}


def suggest_fields(form: FormData) -> dict[str, object]:
    """The dialogue as written so far and the index of the turn to suggest."""
    roles, contents = _texts(form, "turn_role"), _texts(form, "turn_content")
    turns = [{"role": r, "content": c} for r, c in zip(roles, contents, strict=False)]
    return {"turns": turns, "turn": _text(form, "turn")}


def missing_ranks(values: dict[str, object]) -> int:
    """How many shown completions the ranking form left without a rank."""
    return sum(1 for j in values["judgements"] if not j["rank"])  # type: ignore[attr-defined]


def ranking_fields(form: FormData, completion_ids: list[int]) -> dict[str, object]:
    """Fields rank_<id>, quality_<id> and flag_<id> (repeated) for each shown completion."""
    judgements = []
    for cid in completion_ids:
        quality = _text(form, f"quality_{cid}")
        judgements.append(
            {
                "completion_id": cid,
                "rank": _text(form, f"rank_{cid}"),
                "quality": quality or None,
                "flags": [f for f in form.getlist(f"flag_{cid}") if f in FLAGS],
            }
        )
    return {
        "judgements": judgements,
        "has_ties": _text(form, "has_ties") == "on",
        "all_bad": _text(form, "all_bad") == "on",
        "better_answer": _text(form, "better_answer") or None,
    }


def skip_fields(form: FormData) -> dict[str, object]:
    return {"reason": _text(form, "reason"), "note": _text(form, "note") or None}


def gold_item_fields(form: FormData) -> dict[str, object]:
    """A gold ranking item: rows completion_<i>, gold_rank_<i>, gold_flag_<i> (repeated); rows
    without text are left out. No rank at all: no gold ranking; flags only when checks_flags."""
    rows = [i for i in range(9) if _text(form, f"completion_{i}").strip()]
    ranks = [_text(form, f"gold_rank_{i}") for i in rows]
    return {
        "instruction": _text(form, "instruction"),
        "category": _text(form, "category") or "other",
        "completions": [_text(form, f"completion_{i}") for i in rows],
        "gold_ranks": ranks if any(ranks) else None,
        "gold_flags": (
            [[f for f in form.getlist(f"gold_flag_{i}") if f in FLAGS] for i in rows]
            if _text(form, "checks_flags") == "on"
            else None
        ),
    }


def screening_prompt_fields(form: FormData) -> dict[str, object]:
    return {
        "instruction": _text(form, "instruction"),
        "category": _text(form, "category") or "other",
    }
