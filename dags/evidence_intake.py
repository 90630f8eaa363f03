"""
# Evidence intake

Every few minutes: find new submissions under `incoming/`, preserve and analyse them in batches,
and record every step in the custody ledger.

1. **list_new**: objects under `incoming/` (optionally one case) not yet processed by key + ETag;
   submissions that failed before come back.
2. **make_batches**: lists of at most `batch_size` keys.
3. **process_batch** (mapped, one task per batch): preserve, hash, extract, check, dedupe,
   record, using every core of its worker (`EVIDENCE_WORKERS`). Emits the `evidence://items`
   asset event.
4. **summary**: counts per status and per finding code (no coordinates, ever).

Every step is idempotent: clear and re-run any task and the ledger gains no duplicate.
The store is the `evidence_s3` Connection's bucket (else `EVIDENCE_*`); the ledger is
`EVIDENCE_DATABASE_URL`. Schedule: `EVIDENCE_INTAKE_SCHEDULE` (default every 5 minutes).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import Asset, Param, dag, get_current_context, task
from evidence_common import DEFAULT_ARGS, notify_failure, open_evidence_context, schedule

log = logging.getLogger(__name__)

ITEMS = Asset(uri="evidence://items", name="evidence_items")


@dag(
    dag_id="evidence_intake",
    schedule=schedule("intake", "*/5 * * * *"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["evidence", "intake"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    on_failure_callback=notify_failure,
    params={
        "case": Param(
            None, type=["null", "string"], description="Only this case id (empty: every case)."
        ),
        "batch_size": Param(
            50, type="integer", minimum=1, maximum=5000, description="Submissions per batch task."
        ),
    },
)
def evidence_intake() -> None:
    """Find new submissions, process them in mapped batches, summarise."""

    @task
    def list_new(params: dict[str, Any] | None = None) -> list[str]:
        """Keys of new (or previously failed) submissions."""
        from verification import pipeline

        ctx = open_evidence_context(get_current_context())
        keys = [info.key for info in pipeline.list_new(ctx, (params or {}).get("case"))]
        log.info("%s new submission(s) under incoming/", len(keys))
        return keys

    @task
    def make_batches(keys: list[str], params: dict[str, Any] | None = None) -> list[list[str]]:
        """Split the keys into batches of ``batch_size``."""
        size = max(1, int((params or {}).get("batch_size") or 50))
        return [keys[i : i + size] for i in range(0, len(keys), size)]

    @task(outlets=[ITEMS])
    def process_batch(batch: list[str]) -> list[dict[str, Any]]:
        """Preserve, analyse and record one batch; one bad file never stops the batch."""
        from verification import pipeline

        ctx = open_evidence_context(get_current_context())
        outcomes = pipeline.process_batch(ctx, batch, workers=ctx.settings.workers)
        return [outcome.to_dict() for outcome in outcomes]

    @task(trigger_rule="none_failed")  # runs (with nothing) when no batch was mapped
    def summary(results: list[list[dict[str, Any]]]) -> dict[str, Any]:
        """Counts per status and per finding code, logged and returned."""
        outcomes = [o for batch in results for o in batch]
        statuses = Counter(o["status"] for o in outcomes)
        findings = Counter(code for o in outcomes for code in o["findings"])
        report = {
            "submissions": len(outcomes),
            "statuses": dict(sorted(statuses.items())),
            "findings": dict(sorted(findings.items())),
            "failed": sorted(o["key"] for o in outcomes if o["status"] == "failed"),
        }
        log.info("intake: %s submission(s), statuses %s", len(outcomes), report["statuses"])
        log.info("intake: findings %s", report["findings"])
        return report

    batches = make_batches(list_new())
    summary(process_batch.expand(batch=batches))


dag = evidence_intake()

if __name__ == "__main__":
    dag.test()
