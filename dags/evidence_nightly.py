"""
# Evidence nightly: fixity, reprocessing, checkpoint

Every night, prove that every preserved original is still the byte sequence received.

1. **fixity** (mapped over batches of items): re-read each vault object, recompute its SHA-256
   and record a `fixity check` custody event (`success`, `failure`, `missing` or `not-run`).
   Re-running the same DAG run records nothing new; the next night adds one event per item.
   With `EVIDENCE_FIXITY_BUDGET_MB` (or the `budget_mb` param) a night checks only that many
   MiB of originals, oldest-verified first, so a large collection is covered in rotation;
   every original must still be checked within `EVIDENCE_FIXITY_CYCLE_DAYS`.
   **untracked** lists objects under `vault/` and `derivatives/` that no item owns.
2. **reprocess** (mapped): items whose newest record came from an older pipeline version get a
   new record; the old record and its events stay.
3. **views**: full-size photo views and video proxies for items that have none yet (items
   recorded before views existed, or whose intake run's views task did not finish), at most
   `views_limit` items a night (param, default 200), oldest first; a view that cannot be made is
   recorded with its reason, a store that cannot be read fails the task and the verdict.
4. **checkpoint**: a signed Merkle root over every chain head, copied write-once to
   `checkpoints/<created_at>.json` in the bucket, then time-stamped when
   `verification.ledger.timestamps` is installed.
5. **custody**: `evidence custody verify` (every chain under the pinned keys, reconciled with
   the items, the vault objects and the anchored checkpoints).
6. **verdict**: fails the run, after everything above is recorded, when an original failed its
   check, is missing or could not be read at all (`not-run` is never a pass), when an object is
   untracked, when an original is overdue for its check, when custody verification fails, when
   an item could not be reprocessed, or when a batch or the views backfill did not finish. The DAG's `on_failure_callback`
   (`evidence_common.notify_failure`) is where e-mail or chat alerts are wired.

Schedule: `EVIDENCE_NIGHTLY_SCHEDULE` (default 02:00 UTC).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from evidence_common import (
    DEFAULT_ARGS,
    notify_failure,
    open_evidence_context,
    run_locally,
    schedule,
)

log = logging.getLogger(__name__)


@dag(
    dag_id="evidence_nightly",
    schedule=schedule("nightly", "0 2 * * *"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["evidence", "fixity", "custody"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    on_failure_callback=notify_failure,
    params={
        "batch_size": Param(
            500, type="integer", minimum=1, maximum=100_000, description="Items per fixity task."
        ),
        "reprocess": Param(True, type="boolean", description="Reprocess stale items."),
        "budget_mb": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            description="MiB of originals to check tonight, oldest-verified first "
            "(default EVIDENCE_FIXITY_BUDGET_MB; 0 checks every original).",
        ),
        "verify_custody": Param(
            True, type="boolean", description="Run custody verification after the checkpoint."
        ),
        "views_limit": Param(
            200,
            type="integer",
            minimum=0,
            description="At most this many items without views get them tonight (0: none).",
        ),
    },
)
def evidence_nightly() -> None:
    """Fixity over the vault, reprocessing, checkpoint, verdict."""

    @task
    def list_items(params: dict[str, Any] | None = None) -> list[list[str]]:
        """The originals due tonight (all of them without a budget), in batches."""
        from verification.pipeline import fixity

        ctx = open_evidence_context(get_current_context())
        budget = (params or {}).get("budget_mb")
        mib = ctx.settings.fixity_budget_mb if budget is None else int(budget)
        items = fixity.due_items(ctx, mib * 1024 * 1024)
        log.info("%s item(s) due for their fixity check", len(items))
        return fixity.batches(items, int((params or {}).get("batch_size") or 500))

    @task
    def untracked() -> list[str]:
        """Object keys under vault/ and derivatives/ that no item owns."""
        from verification.pipeline import fixity

        ctx = open_evidence_context(get_current_context())
        return [r.vault_key for r in fixity.untracked_objects(ctx)]

    @task(trigger_rule="all_done")
    def overdue() -> list[str]:
        """Originals not checked within EVIDENCE_FIXITY_CYCLE_DAYS (after tonight's checks)."""
        from verification.pipeline import fixity

        context = get_current_context()
        ctx = open_evidence_context(context)
        moment = context.get("data_interval_end") or context.get("logical_date")
        return fixity.overdue_items(ctx, ctx.settings.fixity_cycle_days, moment)

    @task
    def check_fixity(batch: list[str]) -> dict[str, Any]:
        """Fixity of one batch; returns the counts and the results that are not success."""
        from verification.pipeline import fixity

        context = get_current_context()
        ctx = open_evidence_context(context)
        results = fixity.check_items(ctx, batch, context["ti"].run_id)
        return {
            "counts": fixity.summarise(results),
            "problems": [r.to_dict() for r in results if r.outcome != "success"],
        }

    @task
    def list_stale(params: dict[str, Any] | None = None) -> list[list[str]]:
        """Items whose record predates the current pipeline version, in batches."""
        from verification import pipeline
        from verification.pipeline import fixity

        if not (params or {}).get("reprocess", True):
            return []
        ctx = open_evidence_context(get_current_context())
        stale = pipeline.stale_items(ctx)
        log.info("%s stale item(s) to reprocess", len(stale))
        return fixity.batches(stale, 50)

    @task
    def reprocess(batch: list[str]) -> dict[str, Any]:
        """A new record for each stale item; one that cannot be reprocessed is reported (and fails
        the verdict), the others go on."""
        from verification import pipeline

        ctx = open_evidence_context(get_current_context())
        outcomes = pipeline.reprocess_items(ctx, batch, workers=ctx.settings.workers)
        failed = [o.item or o.key for o in outcomes if o.failed]
        return {"reprocessed": len(outcomes) - len(failed), "failed": failed}

    @task(trigger_rule="all_done")
    def views(params: dict[str, Any] | None = None) -> dict[str, int]:
        """Views for the oldest items that have none (recorded, with the reason when a view
        cannot be made); fails when the store could not be read or written."""
        from verification.pipeline import views as item_views

        ctx = open_evidence_context(get_current_context())
        limit = int((params or {}).get("views_limit", 200))
        outcomes = item_views.make_views(ctx, item_views.missing_views(ctx, limit))
        return item_views.account_views(outcomes, "views backfill")

    @task(trigger_rule="all_done")
    def checkpoint() -> dict[str, Any]:
        """Sign and store a checkpoint over every chain head (after fixity and reprocessing)."""
        from verification.pipeline import fixity

        return fixity.checkpoint_and_stamp(open_evidence_context(get_current_context()))

    @task(trigger_rule="all_done")
    def custody(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Custody verification with reconciliation: its failures (or that it was skipped)."""
        from verification.pipeline import fixity

        if not (params or {}).get("verify_custody", True):
            return {"skipped": True, "failures": []}
        report = fixity.verify_collection(open_evidence_context(get_current_context()))
        return {"skipped": False, "failures": [str(f) for f in report.failures]}

    @task(trigger_rule="all_done", retries=0)
    def verdict(
        fixity_batches: list[list[str]],
        fixity_results: list[dict[str, Any]],
        stale_batches: list[list[str]],
        reprocess_results: list[dict[str, Any]],
        stored: dict[str, Any] | None,
        trust: dict[str, Any],
        backfill: dict[str, int] | None,
    ) -> dict[str, Any]:
        """Fail the run when an original failed, is missing or could not be checked, when an
        object is untracked or an original overdue, when custody does not verify, when an item
        could not be reprocessed, or when any step did not finish."""
        from airflow.sdk.exceptions import AirflowFailException

        report = {**_report(fixity_results, reprocess_results, stored), **_trust(trust)}
        unfinished = (len(fixity_results) < len(fixity_batches)) or (
            len(reprocess_results) < len(stale_batches)
        )
        log.info("nightly: fixity %s, checkpoint %s", report["fixity"], report["checkpoint"])
        reasons = [
            f"{len(report['problems'])} damaged or missing original(s)"
            if report["problems"]
            else "",
            f"{len(report['not_checked'])} original(s) could not be checked (not-run)"
            if report["not_checked"]
            else "",
            f"{len(report['reprocess_failed'])} item(s) could not be reprocessed"
            if report["reprocess_failed"]
            else "",
            "a fixity or reprocessing batch did not finish" if unfinished else "",
            "no checkpoint was written" if stored is None else "",
            "the views backfill did not finish" if backfill is None else "",
            *_trust_reasons(report),
        ]
        reasons = [r for r in reasons if r]
        if reasons:
            msg = f"nightly check failed: {'; '.join(reasons)} (fixity {report['fixity']})"
            raise AirflowFailException(msg)
        return report

    fixity_batches = list_items()
    fixity_results = check_fixity.expand(batch=fixity_batches)
    stale_batches = list_stale()
    reprocess_results = reprocess.expand(batch=stale_batches)
    backfill = views()
    stored = checkpoint()
    [fixity_results, reprocess_results, backfill] >> stored
    planted, late = untracked(), overdue()
    fixity_results >> late
    verified = custody()
    stored >> verified
    trust = {"untracked": planted, "overdue": late, "custody": verified}
    verdict(
        fixity_batches, fixity_results, stale_batches, reprocess_results, stored, trust, backfill
    )


def _report(
    fixity_results: list[dict[str, Any]],
    reprocess_results: list[dict[str, Any]],
    stored: dict[str, Any] | None,
) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for batch in fixity_results:
        for outcome, count in batch["counts"].items():
            counts[outcome] = counts.get(outcome, 0) + count
    problems = [
        {"item": p["item"][:12], "outcome": p["outcome"]}
        for batch in fixity_results
        for p in batch["problems"]
        if p["outcome"] in {"failure", "missing"}
    ]
    not_checked = [
        p["item"][:12]
        for batch in fixity_results
        for p in batch["problems"]
        if p["outcome"] == "not-run"
    ]
    return {
        "fixity": dict(sorted(counts.items())),
        "problems": problems,
        "not_checked": not_checked,
        "reprocessed": sum(r["reprocessed"] for r in reprocess_results),
        "reprocess_failed": [sha[:12] for r in reprocess_results for sha in r["failed"]],
        "checkpoint": stored,
    }


def _trust(trust: dict[str, Any]) -> dict[str, Any]:
    """Untracked objects, overdue originals and custody failures (None: the task did not run)."""
    custody = trust.get("custody")
    return {
        "untracked": trust.get("untracked"),
        "overdue": trust.get("overdue"),
        "custody": None if custody is None else custody["failures"],
        "custody_skipped": bool(custody and custody["skipped"]),
    }


def _trust_reasons(report: dict[str, Any]) -> list[str]:
    reasons = []
    for name, words in (
        ("untracked", "object(s) under vault/ or derivatives/ that no item owns (untracked)"),
        ("overdue", "original(s) not checked within EVIDENCE_FIXITY_CYCLE_DAYS (overdue)"),
        ("custody", "custody verification failure(s)"),
    ):
        found = report.get(name)
        if found is None:
            reasons.append(f"the {name} check did not finish")
        elif found:
            reasons.append(f"{len(found)} {words}, first: {str(found[0])[:120]}")
    return reasons


dag = evidence_nightly()

if __name__ == "__main__":
    sys.exit(run_locally(dag))
