"""The ledger layer: the custody ledger database and everything that makes it tamper-evident.

Owns the database models and migrations (:mod:`.models`, ``migrations/``), the hash-chained,
signed custody events and their verification (:mod:`.custody`), signed checkpoints over every
chain head (:mod:`.checkpoints`), their anchors and the key pin kept in the object store
(:mod:`.anchors`), the reconciliation of items, chains, vault objects and anchored checkpoints
(:mod:`.reconcile`), the installation key (:mod:`.signing`), RFC 3161 time-stamps
(:mod:`.timestamps`) and analyst decisions as the chain records them (:mod:`.review_events`).
It may import only the core layer.
"""
