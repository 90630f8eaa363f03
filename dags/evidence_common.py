"""What both evidence DAGs share: default arguments, the store and ledger wiring, the failure hook.

Not a DAG file (listed in ``.airflowignore``). Nothing here runs at import beyond reading
environment variables: the pipeline library, the amazon provider and boto3 load inside tasks.

Where a task's store and ledger come from:

* the object store is the bucket behind the Airflow Connection ``evidence_s3`` (type ``aws``,
  ``endpoint_url`` in its extra for MinIO; ``service_config.s3.bucket_name`` names the bucket,
  default ``EVIDENCE_S3_BUCKET``), opened with the amazon provider's ``S3Hook``;
  without that Connection, the ``EVIDENCE_*`` settings decide (default: the local store);
* the custody ledger is the database at ``EVIDENCE_DATABASE_URL`` (default: SQLite in
  ``EVIDENCE_HOME``), signed with the installation key at ``EVIDENCE_KEY_PATH``.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from verification.core.config import Settings
    from verification.pipeline import Context
    from verification.storage import ObjectStore

log = logging.getLogger(__name__)

CONN_ID = os.environ.get("EVIDENCE_AIRFLOW_CONN_ID", "evidence_s3")
OWNER = "evidence"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    # Retries cover a worker lost mid-batch or a store hiccup; every step is idempotent.
    "retry_delay": timedelta(seconds=float(os.environ.get("EVIDENCE_RETRY_DELAY_SECONDS", "60"))),
    "retry_exponential_backoff": 2.0,
}


def schedule(name: str, default: str) -> str | None:
    """A DAG's schedule from ``EVIDENCE_<NAME>_SCHEDULE`` ('none' turns it off).

    An environment variable, not an Airflow Variable: a Variable at module level costs a
    metadata-database lookup on every parse (Airflow's best-practice guide warns against it).
    """
    value = os.environ.get(f"EVIDENCE_{name.upper()}_SCHEDULE", default).strip()
    return None if value.lower() in {"", "none", "null"} else value


def execution_agent(context: Any) -> dict[str, Any]:
    """The custody agent of the running task: DAG, run, task, try and map index."""
    ti = context["ti"]
    return {
        "type": "execution",
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "try_number": ti.try_number,
        "map_index": ti.map_index,
    }


def open_evidence_context(context: Any) -> Context:
    """Settings, store and ledger for one task, with the task recorded as the custody agent."""
    from verification.core.config import load_settings
    from verification.pipeline import open_context

    settings = load_settings()
    store = store_from_connection(settings)
    return open_context(settings, store=store, agents=[execution_agent(context)])


def store_from_connection(settings: Settings, conn_id: str = CONN_ID) -> ObjectStore | None:
    """An S3Store on the Connection's client, or None when the Connection is not defined."""
    try:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:
        log.info("amazon provider not installed; the EVIDENCE_* settings choose the store")
        return None
    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        log.info("no Airflow connection %s; the EVIDENCE_* settings choose the store", conn_id)
        return None
    from verification.storage.s3 import S3Store

    hook = S3Hook(aws_conn_id=conn_id)
    bucket = hook.service_config.get("bucket_name") or settings.s3_bucket
    return S3Store(bucket, client=hook.get_conn(), retention_days=settings.retention_days)


def printable(text: str) -> str:
    """Untrusted text (object keys, error messages) escaped for a log line."""
    from verification.core.text import printable as escape

    return escape(str(text))


def run_locally(dag: Any) -> int:
    """``python dags/<file>.py``: one run with ``dag.test()``; exit status 1 unless it succeeded."""
    run = dag.test()
    state = str(getattr(run.state, "value", run.state))
    print(f"{dag.dag_id}: run {run.run_id} ended {state}")
    return 0 if state == "success" else 1


def notify_failure(context: Any) -> None:
    """DAG-level ``on_failure_callback``: the place to wire e-mail or chat alerts.

    It logs; replace the body (or pass a notifier such as the smtp provider's ``SmtpNotifier``
    or the slack provider's ``SlackNotifier`` as ``on_failure_callback``) to alert people.
    Messages must name runs and items, never coordinates or evidence content.
    """
    run = context.get("dag_run")
    log.error(
        "evidence DAG %s run %s failed: %s",
        getattr(run, "dag_id", "?"),
        getattr(run, "run_id", "?"),
        printable(str(context.get("reason") or "see the failed task's log")),
    )
