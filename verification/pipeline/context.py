"""What every pipeline step needs: settings, the object store, the ledger and who is acting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from verification.core.config import Settings
from verification.ledger.custody import Ledger
from verification.ledger.models import make_engine
from verification.ledger.signing import load_key
from verification.storage import ObjectStore, open_store


@dataclass(frozen=True)
class Context:
    """Settings, the object store and the ledger, plus the agents named in custody events."""

    settings: Settings
    store: ObjectStore
    ledger: Ledger
    agents: tuple[Mapping[str, Any], ...] = ()

    @property
    def engine(self) -> Any:
        """The ledger's database engine."""
        return self.ledger.engine


def open_context(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    agents: Sequence[Mapping[str, Any]] = (),
) -> Context:
    """Connect to the configured store and ledger (run ``evidence init`` first)."""
    engine = make_engine(settings.resolved_database_url)
    signer = load_key(settings.resolved_key_path)
    return Context(settings, store or open_store(settings), Ledger(engine, signer), tuple(agents))
