"""Crash safety: simulated labelers against a real server that is killed with SIGKILL and
restarted, several times, while they work; then every acknowledged submission is looked up.

Each labeler (asyncio + aiohttp, one HTTP session each, through the JSON API) loops over three
actions: rank a task (next task -> ranking, with ties, qualities, flags and sometimes "all bad"
with a better answer), write a demonstration (a single answer or a dialogue, with non-ASCII
text) and write a prompt (with a submission_key). A request that gets no answer (connection
refused or dropped, timeout) or a 5xx is sent again, unchanged, until it is answered: the task
id makes a repeated ranking or demonstration idempotent, the submission_key a repeated prompt.
A 2xx is an acknowledgement: the labeler was told "stored". After the run (the last server is
left up, so every labeler's last action is resolved), the database is compared with what was
acknowledged:

- lost: acknowledged, not in the database;
- duplicated: stored twice (two rankings of one task or of one item by one labeler, two
  demonstrations of one task or ranking, one prompt twice);
- altered: stored, but not exactly as sent (ranks, qualities, flags, texts, labeler);
- unacknowledged: stored, but its labeler never saw a 2xx (a labeler that gave up).

    .venv/bin/python benchmarks/crash.py --db sqlite --kills 10 --duration 60
    .venv/bin/python benchmarks/crash.py --db postgres --kills 10 --duration 60 --labelers 30

tests/api/test_crash_safety.py runs the same code, shorter, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import string
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import PASSWORD, Server, seed, throwaway_database

REQUEST_TIMEOUT_S = 15
GIVE_UP_AFTER_S = 90  # after the run: the last server is up, so everything resolves well before
FLAGS = ("fails_instruction", "hallucination", "harmful", "sexual_or_violent")
# Stored exactly as sent, whatever the script; inner whitespace is kept (outer is stripped).
TEXTS = ["Réponse", "naïve café", "日本語", "Ελληνικά", "emoji 🎉", "line\nbreak", "tab\tstop"]


@dataclass
class CrashConfig:
    labelers: int = 20
    duration: float = 60  # seconds of load; the kills fall inside it
    kills: int = 5
    items: int = 3000  # ranking items seeded
    prompts: int = 1000  # prompts seeded for demonstrations
    server_workers: int = 1
    seed: int = 1


@dataclass
class Ledger:
    """What the labelers were told was stored, and what went wrong on the way."""

    rankings: dict[int, dict[str, Any]] = field(default_factory=dict)  # by task id
    demonstrations: dict[int, dict[str, Any]] = field(default_factory=dict)  # by task id
    prompts: dict[str, dict[str, Any]] = field(default_factory=dict)  # by submission_key
    retries: int = 0
    resent: Counter[str] = field(default_factory=Counter)  # submissions sent more than once
    found_stored: int = 0  # resent prompts the server had stored already (created: false)
    errors: Counter[str] = field(default_factory=Counter)  # answers other than 2xx and 204
    samples: list[str] = field(default_factory=list)
    unresolved: int = 0  # actions given up on

    def error(self, what: str, body: bytes) -> None:
        self.errors[what] += 1
        if len(self.samples) < 5:
            self.samples.append(f"{what}: {body[:300].decode(errors='replace')}")

    @property
    def acknowledged(self) -> int:
        return len(self.rankings) + len(self.demonstrations) + len(self.prompts)


@dataclass
class CrashReport:
    kills: int
    acknowledged: dict[str, int]
    lost: list[str]
    duplicated: list[str]
    altered: list[str]
    unacknowledged: list[str]
    errors: Counter[str]
    error_samples: list[str]
    retries: int
    resent: Counter[str]
    found_stored: int
    unresolved: int
    seconds: float
    downtime: float

    def lines(self) -> list[str]:
        acked = ", ".join(f"{n} {kind}" for kind, n in self.acknowledged.items())
        lines = [
            f"  kills            {self.kills} (server down {self.downtime:.1f} s in all)",
            f"  acknowledged     {sum(self.acknowledged.values())} ({acked})",
            f"  lost             {len(self.lost)}",
            f"  duplicated       {len(self.duplicated)}",
            f"  altered          {len(self.altered)}",
            f"  unacknowledged   {len(self.unacknowledged)} stored but never acknowledged",
            f"  retried requests {self.retries}, actions given up {self.unresolved}",
            f"  resent           {dict(self.resent)} submissions; {self.found_stored} resent "
            "prompts had been stored before their answer was lost",
            f"  error answers    {sum(self.errors.values())} {dict(self.errors) or ''}",
        ]
        for problem in [*self.lost, *self.duplicated, *self.altered, *self.unacknowledged][:10]:
            lines.append(f"    {problem}")
        lines += [f"    e.g. {sample}" for sample in self.error_samples]
        return lines


class GaveUp(Exception):
    pass


class Labeler:
    """One simulated labeler: an HTTP session that retries until it is answered."""

    def __init__(
        self, number: int, http: aiohttp.ClientSession, project_id: int, ledger: Ledger
    ) -> None:
        self.number, self.http, self.project_id, self.ledger = number, http, project_id, ledger
        self.rng = random.Random(number)
        self.give_up_at = float("inf")
        self.written = 0

    async def post(
        self, path: str, body: dict[str, Any] | None = None, kind: str = ""
    ) -> tuple[int, Any]:
        """POST until the server answers with something other than a 5xx; `kind` names a
        submission, counted once in `resent` if it had to be sent again."""
        delay, resent = 0.02, False
        while True:
            try:
                async with self.http.post(path, json=body) as response:
                    status, data = response.status, await response.read()
                if status < 500:
                    return status, json.loads(data) if data and status != 204 else None
                self.ledger.error(f"{path.split('/')[-1].split('?')[0]}: HTTP {status}", data)
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.ledger.retries += 1
            if kind and not resent:
                self.ledger.resent[kind] += 1
                resent = True
            if time.monotonic() > self.give_up_at:
                raise GaveUp
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def run(self, until: float) -> None:
        while time.monotonic() < until:
            action = self.rng.choices(("ranking", "demonstration", "prompt"), (6, 3, 1))[0]
            self.give_up_at = max(until, time.monotonic()) + GIVE_UP_AFTER_S
            try:
                busy = await (self.write_prompt() if action == "prompt" else self.do_task(action))
            except GaveUp:
                self.ledger.unresolved += 1
                return
            if not busy:
                await asyncio.sleep(0.05)  # nothing of that kind waits for this labeler

    async def do_task(self, kind: str) -> bool:
        status, task = await self.post(f"/api/v1/projects/{self.project_id}/tasks/next?kind={kind}")
        if status == 204:
            return False
        if status != 200:
            self.ledger.error(f"next: HTTP {status}", json.dumps(task).encode())
            return False
        body = self.ranking(task) if kind == "ranking" else self.demonstration()
        status, stored = await self.post(f"/api/v1/tasks/{task['id']}/{kind}", body, kind)
        if status != 200:
            self.ledger.error(f"{kind}: HTTP {status}", json.dumps(stored).encode())
            return True
        ledger = self.ledger.rankings if kind == "ranking" else self.ledger.demonstrations
        ledger[task["id"]] = {"labeler": self.number, **body}
        return True

    async def write_prompt(self) -> bool:
        self.written += 1
        key = f"l{self.number}-{self.written}-{uuid.uuid4().hex[:8]}"
        body = {
            "kind": "plain",
            "category": self.rng.choice(["generation", "open_qa", "brainstorming"]),
            "instruction": self.text(),
            "submission_key": key,
        }
        path = f"/api/v1/projects/{self.project_id}/prompts"
        status, stored = await self.post(path, body, "prompt")
        if status not in (200, 201):
            self.ledger.error(f"prompt: HTTP {status}", json.dumps(stored).encode())
            return True
        self.ledger.found_stored += not stored["created"]
        self.ledger.prompts[key] = {"labeler": self.number, **body}
        return True

    def ranking(self, task: dict[str, Any]) -> dict[str, Any]:
        ids = [c["id"] for c in task["completions"]]
        ties = self.rng.random() < 0.3
        # With ties, ranks 1..m over K completions, each used at least once (dense).
        levels = self.rng.randint(1, len(ids) - 1) if ties else len(ids)
        ranks = list(range(1, levels + 1))
        ranks += [self.rng.randint(1, levels) for _ in range(len(ids) - levels)]
        self.rng.shuffle(ranks)
        judgements = [
            {
                "completion_id": cid,
                "rank": rank,
                "quality": self.rng.choice([None, *range(1, 8)]),
                "flags": [f for f in FLAGS if self.rng.random() < 0.15],
            }
            for cid, rank in zip(ids, ranks, strict=True)
        ]
        body: dict[str, Any] = {"judgements": judgements, "has_ties": ties}
        if self.rng.random() < 0.1:
            body |= {"all_bad": True, "better_answer": self.text()}
        return body

    def demonstration(self) -> dict[str, Any]:
        if self.rng.random() < 0.7:
            return {"kind": "single", "answer": self.text()}
        turns = [
            {"role": "assistant" if i % 2 == 0 else "user", "content": self.text()}
            for i in range(self.rng.choice([1, 3, 5]))
        ]
        return {"kind": "dialogue", "turns": turns}

    def text(self) -> str:
        """Unique (a random word first, for the duplicate check), without digits (which the
        personal-data check could take for a phone number)."""
        word = "".join(self.rng.choices(string.ascii_lowercase, k=12))
        return f"{word} " + " ".join(self.rng.sample(TEXTS, 3))


async def _kill_and_restart(server: Server, config: CrashConfig, start: float) -> float:
    """Kills the server at evenly spaced moments (jittered) within the run; returns downtime."""
    rng = random.Random(config.seed)
    gap = config.duration / (config.kills + 1)
    downtime = 0.0
    for i in range(config.kills):
        at = start + gap * (i + 1) + rng.uniform(-gap / 4, gap / 4)
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        down = time.monotonic()
        server.kill()
        await asyncio.to_thread(server.start)
        downtime += time.monotonic() - down
    return downtime


async def _load(
    server: Server, project_id: int, tokens: list[str], config: CrashConfig
) -> tuple[Ledger, float, float]:
    """Runs the labelers and the killer; returns the ledger, the downtime and the seconds."""
    ledger = Ledger()
    start = time.monotonic()
    until = start + config.duration
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    sessions = [
        aiohttp.ClientSession(
            server.base,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            connector=aiohttp.TCPConnector(limit=1),
        )
        for token in tokens
    ]
    try:
        killer = asyncio.create_task(_kill_and_restart(server, config, start))
        labelers = [Labeler(i, http, project_id, ledger) for i, http in enumerate(sessions)]
        await asyncio.gather(*(labeler.run(until) for labeler in labelers))
        downtime = await killer
    finally:
        for http in sessions:
            await http.close()
    return ledger, downtime, time.monotonic() - start


def seed_crash(url: str, config: CrashConfig) -> tuple[int, list[str], dict[int, int]]:
    """The benchmark project, plus prompts waiting for demonstrations (by an author who does
    not take part). Returns the project id, the labelers' tokens and their user ids by number."""
    from sqlalchemy import select

    from app.db import Database
    from app.models import Project, User
    from app.schemas.admin import UserIn
    from app.schemas.labeling import PromptIn
    from app.services import prompts, users

    seeded = seed(
        url, config.labelers, config.items, prompt_chars=60, completion_chars=80,
        random_seed=config.seed,
    )  # fmt: skip
    db = Database(url)
    try:
        with db.session() as session:
            project = session.get(Project, seeded.project_id)
            assert project is not None
            author = users.create_user(
                session, UserIn(username="author", password=PASSWORD, role="labeler")
            )
            for n in range(config.prompts):
                data = PromptIn(
                    kind="plain",
                    category="open_qa",
                    instruction=f"{n} asks: what comes next?",
                    confirm_warnings=True,
                )
                prompts.create_prompt(session, project, author, data)
            names = {f"labeler{i:03d}": i for i in range(config.labelers)}
            ids = {
                names[u.username]: u.id
                for u in session.scalars(select(User).where(User.username.in_(names)))
            }
    finally:
        db.dispose()
    return seeded.project_id, seeded.tokens, ids


def check(url: str, ledger: Ledger, user_ids: dict[int, int]) -> dict[str, list[str]]:
    """Compares the database with the ledger; returns the problems found, by kind."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import selectinload

    from app.db import Database
    from app.models import Demonstration, Prompt, Ranking

    problems: dict[str, list[str]] = {"lost": [], "duplicated": [], "altered": [], "unacked": []}
    labelers = set(user_ids.values())
    db = Database(url)
    try:
        with db.session(write=False) as session:
            rankings = session.scalars(
                select(Ranking)
                .where(Ranking.labeler_id.in_(labelers))
                .options(selectinload(Ranking.entries))
            ).all()
            demonstrations = session.scalars(
                select(Demonstration).where(Demonstration.labeler_id.in_(labelers))
            ).all()
            prompts = session.scalars(select(Prompt).where(Prompt.author_id.in_(labelers))).all()
            twice = session.execute(
                select(Ranking.labeler_id, Ranking.item_id)
                .group_by(Ranking.labeler_id, Ranking.item_id)
                .having(func.count() > 1)
            ).all()
    finally:
        db.dispose()
    problems["duplicated"] += [f"labeler {lab} ranked item {item} twice" for lab, item in twice]

    by_task: dict[int, list[Ranking]] = {}
    for r in rankings:
        by_task.setdefault(r.task_id, []).append(r)
    better = {d.ranking_id: d for d in demonstrations if d.ranking_id is not None}
    demos_by_task: dict[int, list[Demonstration]] = {}
    for d in demonstrations:
        if d.task_id is not None:
            demos_by_task.setdefault(d.task_id, []).append(d)
    prompts_by_text: dict[str, list[Prompt]] = {}
    for p in prompts:
        prompts_by_text.setdefault(p.instruction, []).append(p)

    for what, groups in (
        ("ranking of task", by_task),
        ("demonstration of task", demos_by_task),
        ("prompt", prompts_by_text),
    ):
        for key, rows in groups.items():
            if len(rows) > 1:
                problems["duplicated"].append(f"{what} {key!r} stored {len(rows)} times")

    for task_id, sent in ledger.rankings.items():
        if task_id not in by_task:
            problems["lost"].append(f"ranking of task {task_id}")
            continue
        stored = by_task[task_id][0]
        if _ranking_differs(stored, sent, user_ids, better.get(stored.id)):
            problems["altered"].append(f"ranking of task {task_id}")
    for task_id, sent in ledger.demonstrations.items():
        if task_id not in demos_by_task:
            problems["lost"].append(f"demonstration of task {task_id}")
            continue
        stored = demos_by_task[task_id][0]
        turns = (
            [{"role": "assistant", "content": sent["answer"]}]
            if sent["kind"] == "single"
            else sent["turns"]
        )
        if (
            stored.labeler_id != user_ids[sent["labeler"]]
            or stored.kind != sent["kind"]
            or stored.messages[-len(turns) :] != turns
        ):
            problems["altered"].append(f"demonstration of task {task_id}")
    for key, sent in ledger.prompts.items():
        rows = prompts_by_text.get(sent["instruction"])
        if not rows:
            problems["lost"].append(f"prompt {key}")
        elif (rows[0].author_id, rows[0].submission_key, rows[0].category) != (
            user_ids[sent["labeler"]],
            key,
            sent["category"],
        ):
            problems["altered"].append(f"prompt {key}")

    problems["unacked"] += [f"ranking of task {t}" for t in by_task if t not in ledger.rankings]
    problems["unacked"] += [
        f"demonstration of task {t}" for t in demos_by_task if t not in ledger.demonstrations
    ]
    problems["unacked"] += [
        f"prompt {p.submission_key}" for p in prompts if p.submission_key not in ledger.prompts
    ]
    return problems


def _ranking_differs(
    stored: Any, sent: dict[str, Any], user_ids: dict[int, int], better: Any
) -> bool:
    entries = {
        e.completion_id: (e.rank, e.quality, [f for f in FLAGS if getattr(e, f)])
        for e in stored.entries
    }
    expected = {
        j["completion_id"]: (j["rank"], j["quality"], j["flags"]) for j in sent["judgements"]
    }
    better_answer = better.messages[-1]["content"] if better is not None else None
    return (
        stored.labeler_id != user_ids[sent["labeler"]]
        or entries != expected
        or stored.has_ties != sent["has_ties"]
        or stored.all_bad != sent.get("all_bad", False)
        or better_answer != sent.get("better_answer")
    )


def run_crash(url: str, workdir: Path, config: CrashConfig) -> CrashReport:
    """Seeds the (migrated or empty) database at `url`, runs the labelers against a server that
    is killed `config.kills` times, and compares the database with what was acknowledged."""
    project_id, tokens, user_ids = seed_crash(url, config)
    server = Server(url, workdir, workers=config.server_workers, access_log=False)
    server.start()
    try:
        ledger, downtime, seconds = asyncio.run(_load(server, project_id, tokens, config))
    finally:
        server.stop()
    problems = check(url, ledger, user_ids)
    return CrashReport(
        kills=server.starts - 1,
        acknowledged={
            "rankings": len(ledger.rankings),
            "demonstrations": len(ledger.demonstrations),
            "prompts": len(ledger.prompts),
        },
        lost=problems["lost"],
        duplicated=problems["duplicated"],
        altered=problems["altered"],
        unacknowledged=problems["unacked"],
        errors=ledger.errors,
        error_samples=ledger.samples,
        retries=ledger.retries,
        resent=ledger.resent,
        found_stored=ledger.found_stored,
        unresolved=ledger.unresolved,
        seconds=seconds,
        downtime=downtime,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Kill the server (SIGKILL) under simulated labelers; count lost and "
        "duplicated submissions.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = CrashConfig()
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--duration", type=float, default=defaults.duration, help="seconds")
    parser.add_argument("--labelers", type=int, default=defaults.labelers)
    parser.add_argument("--items", type=int, default=defaults.items, help="ranking items")
    parser.add_argument("--prompts", type=int, default=defaults.prompts, help="for demonstrations")
    parser.add_argument("--server-workers", type=int, default=defaults.server_workers)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--postgres-url", help="an existing server (else one is started)")
    args = parser.parse_args(argv)
    if args.kills < 0 or args.duration <= 0 or args.labelers < 1:
        parser.error("--kills must not be negative; --duration and --labelers must be positive")
    config = CrashConfig(
        args.labelers, args.duration, args.kills, args.items, args.prompts,
        args.server_workers, args.seed,
    )  # fmt: skip
    print("$ " + " ".join([Path(sys.executable).name, *sys.argv]))
    clean = True
    for db in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        with (
            tempfile.TemporaryDirectory(prefix=f"rankery-crash-{db}-") as workdir,
            throwaway_database(db, Path(workdir), args.postgres_url) as (url, _server),
        ):
            report = run_crash(url, Path(workdir), config)
        print(
            f"\nRankery crash run - {db}, {config.labelers} labelers, {report.seconds:.0f} s, "
            f"{config.server_workers} server worker(s)"
        )
        print("\n".join(report.lines()))
        clean &= not (report.lost or report.duplicated or report.altered)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
