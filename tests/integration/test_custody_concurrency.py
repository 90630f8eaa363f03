"""Eight processes appending to one item at once never fork its chain (SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from verification.ledger.custody import Ledger
from verification.ledger.models import Item, make_engine, migrate, utcnow
from verification.ledger.signing import create_key, load_key

SHA = "c" * 64
PROCESSES = 8
EVENTS_EACH = 6


def _appender(
    url: str, key_path: str, worker: int, start: multiprocessing.synchronize.Event
) -> None:
    ledger = Ledger(make_engine(url), load_key(Path(key_path)))
    start.wait()
    for i in range(EVENTS_EACH):
        ledger.append(
            SHA, "fixity check", "success", {"w": worker, "i": i}, step_key=f"w{worker}-{i}"
        )


def _run(url: str, tmp_path: Path) -> Ledger:
    engine = make_engine(url)
    migrate(engine)
    signer = create_key(tmp_path / "key.pem")
    ledger = Ledger(engine, signer)
    ledger.register_key()
    with Session(engine) as session, session.begin():
        session.add(
            Item(
                sha256=SHA,
                size=1,
                sha1="0" * 40,
                md5="0" * 32,
                format="jpeg",
                mime="image/jpeg",
                kind="image",
                vault_key="v",
                first_seen=utcnow(),
                case_id="c",
            )
        )
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [
        ctx.Process(target=_appender, args=(url, str(tmp_path / "key.pem"), w, start))
        for w in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    return ledger


def _assert_one_chain(ledger: Ledger) -> None:
    events = ledger.events(SHA)
    assert len(events) == PROCESSES * EVENTS_EACH
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len({e.prev_hash for e in events}) == len(
        events
    )  # no two events share a parent: no fork
    report = ledger.verify(SHA)
    assert report.ok, report.failures


@pytest.mark.integration
def test_concurrent_appends_on_sqlite_form_one_chain(tmp_path: Path) -> None:
    """Concurrent writers on the embedded SQLite ledger produce one linear, valid chain."""
    _assert_one_chain(_run(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path))


@pytest.mark.integration
@pytest.mark.postgres
def test_concurrent_appends_on_postgresql_form_one_chain(tmp_path: Path, pg_url: str) -> None:
    """Concurrent writers on PostgreSQL produce one linear, valid chain."""
    ledger = _run(pg_url, tmp_path)
    _assert_one_chain(ledger)
    ledger.engine.dispose()
