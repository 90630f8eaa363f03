"""
# Evidence export: hand a case over

Manually triggered. Exports one case and writes it to the bucket under
`exports/<case>/<run time>/<export name>/...`:

* **bagit** (default): the BagIt package to hand over: preserved originals byte for byte, with
  verification records, custody chains, public keys and a signed checkpoint (docs/exports.md).
  `redact` adds metadata-free working copies under `data/redacted/`.
* **html**: one self-contained report file to read or print.
* **json**: the same content for machines (docs/export-schema.json).

Every exported item gets an `export` custody event naming the case, format, destination and the
analyst. A retry makes a new export (its own events, its own folder): an export is a fact in
the chain of custody, so a failed attempt is not hidden by overwriting it.
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
    printable,
    run_locally,
)

log = logging.getLogger(__name__)


@dag(
    dag_id="evidence_export",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["evidence", "export", "custody"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    on_failure_callback=notify_failure,
    params={
        "case": Param(
            "case-kyiv",
            type="string",
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
            description="Case id to export.",
        ),
        "format": Param("bagit", type="string", enum=["bagit", "html", "json"]),
        "redact": Param(False, type="boolean", description="bagit: add redacted working copies."),
        "analyst": Param(
            None,
            type=["null", "string"],
            description="Who exports (recorded in custody); default: the user who triggered.",
        ),
        "organization": Param(None, type=["null", "string"], description="Source-Organization."),
    },
)
def evidence_export() -> None:
    """Export one case and upload it to the bucket."""

    @task
    def export(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Export into a temporary directory, then upload under exports/<case>/<run time>/."""
        import tempfile
        from pathlib import Path

        from verification.exports import export_case, publish_export

        params = params or {}
        context = get_current_context()
        ctx = open_evidence_context(context)
        run = context["dag_run"]
        analyst = params.get("analyst") or getattr(run, "triggering_user_name", None) or "airflow"
        stamp = (run.run_after or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        prefix = f"exports/{params['case']}/{stamp}"
        with tempfile.TemporaryDirectory(prefix="evidence-export-") as tmp:
            path = export_case(
                ctx,
                params["case"],
                params["format"],
                Path(tmp),
                analyst,
                redact=bool(params.get("redact")),
                organization=params.get("organization"),
                destination=f"{ctx.store.url}/{prefix}/",
            )
            keys = publish_export(ctx.store, path, prefix)
        log.info("export of case %s: %s object(s)", printable(str(params["case"])), len(keys))
        return {
            "case": params["case"],
            "format": params["format"],
            "objects": len(keys),
            "first": keys[0],
        }

    export()


dag = evidence_export()

if __name__ == "__main__":
    sys.exit(run_locally(dag))
