"""The README.md dataset card of an export snapshot. It holds no time stamp and no snapshot id
(the manifest and the directory name do), so the same data and filters give the same card."""

import hashlib
import html
import json
import re
from typing import Any

from app.models import Project
from app.schemas.export import SCHEMA_VERSION, SPLITS
from app.schemas.snapshot import MIN_AGREEMENT_COMPARISONS, ExportRequest

COLLECTION = """\
Collected with Rankery, following the InstructGPT process: labelers write prompts (plain,
few-shot, or for a user's use case) and demonstrations of the wanted answer, and rank K model
completions per prompt from best to worst (ties allowed), flagging problems and rating overall
quality (1-7). Imported data (OpenAssistant trees, chosen/rejected pairs, bulk completions) is
marked: its prompt kind is `imported` or `dialogue` and its rankings have labeler group
`imported`."""

LIMITS = """\
- People are pseudonyms, stable within this deployment only (an HMAC of the user with the
  deployment's secret key); they do not identify anyone outside it.
- Splits are by prompt author; turns of a conversation written by different users (when an
  import names them) may sit in different splits.
- `rm` keeps every labeler's own ranking of a prompt; prompts ranked by several labelers appear
  once per ranking. Merge or weight them in training as you need.
- Agreement is measured on the items that several of these rankings share (the project's
  overlap share), not on every ranking.
- The time window applies to each record's own creation time: a ranking inside the window may
  belong to a prompt written before it."""


def _plain(text: str) -> str:
    """Text from users as literal markdown: no HTML, links, emphasis or line breaks."""
    text = html.escape(" ".join(text.split()), quote=False)
    return re.sub(r"([\\`*_\[\]()#!|~>])", r"\\\1", text)


def render(
    request: ExportRequest,
    split_policy: dict[str, Any],
    counts: dict[str, int],
    agreement: dict[str, Any],
    projects: list[Project | None],
    low_agreement_labelers: int,
) -> str:
    lines = [
        "# Rankery dataset snapshot",
        "",
        f"Export format version {SCHEMA_VERSION} (see `docs/export-format.schema.json` in the "
        "Rankery repository); `manifest.json` lists the filters, counts and sha256 of each file.",
        "",
        "## How the data was collected",
        "",
        COLLECTION,
        "",
        "## Projects and guidelines",
        "",
    ]
    for project in projects:
        if project is None:
            continue
        version = hashlib.sha256(project.guidelines.encode()).hexdigest()[:12]
        lines.append(
            f"- **{_plain(project.name)}**: K = {project.k_min}..{project.k_max} completions per "
            f"ranking; guidelines version `{version}` (sha256 of their text)."
        )
    lines += ["", "## Filters", ""]
    for name, value in request.model_dump(mode="json").items():
        lines.append(f"- `{name}`: `{json.dumps(value)}`")
    if request.min_labeler_agreement is not None:
        lines += ["", _agreement_filter(request.min_labeler_agreement, low_agreement_labelers)]
    lines += [
        "",
        "## Splits",
        "",
        f"By {split_policy['unit']}; {split_policy['assignment']}.",
        "",
        "## Records",
        "",
        "| file | " + " | ".join(SPLITS) + " |",
        "| --- | " + " | ".join("---:" for _ in SPLITS) + " |",
    ]
    stems = sorted({name.rsplit(".", 2)[0] + "." + name.rsplit(".", 1)[1] for name in counts})
    for stem in stems:
        kind, suffix = stem.split(".")
        row = [str(counts.get(f"{kind}.{split}.{suffix}", 0)) for split in SPLITS]
        lines.append(f"| {kind} ({suffix}) | " + " | ".join(row) + " |")
    lines += ["", "## Agreement", "", *_agreement(agreement), "", "## Known limits", "", LIMITS, ""]
    return "\n".join(lines)


def _agreement_filter(threshold: float, left_out: int) -> str:
    who = "1 labeler was" if left_out == 1 else f"{left_out} labelers were"
    return (
        f"{who} left out for agreeing with the other labelers on less than {threshold:.1%} of "
        f"completion pairs, measured over all their rankings in these projects once "
        f"{MIN_AGREEMENT_COMPARISONS} or more of them had been compared (as the quality page "
        "shows it); labelers with fewer compared rankings were kept."
    )


def _agreement(summary: dict[str, Any]) -> list[str]:
    if summary["rate"] is None:
        return [
            "No item was ranked by two or more labelers in this snapshot: no agreement to report."
        ]
    low, high = summary["interval_95"]
    alpha, tau = summary["krippendorff_alpha"], summary["kendall_tau_b"]
    return [
        f"Labelers agree on {summary['rate']:.1%} of completion pairs (95 % interval "
        f"{low:.1%} to {high:.1%}) over {summary['items']} items ranked by two or more of them "
        f"({summary['comparisons']} pairs of rankings, {summary['completion_pairs']} completion "
        "pairs). InstructGPT reports 72.6 ± 1.5 % among its training labelers.",
        "",
        f"Krippendorff's alpha (ordinal): {_number(alpha)}; mean Kendall's tau-b: {_number(tau)}.",
        "",
        f"How: {summary['statistic']}.",
    ]


def _number(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"
