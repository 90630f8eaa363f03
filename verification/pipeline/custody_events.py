"""The custody events a submission leaves: ingestion, digests, the vault's fixity check, format
identification, metadata extraction, derivatives, quarantine and validation.

Each event has a step key, so writing them again (a retried transaction, a second run) adds none.
"""

from __future__ import annotations

import logging
from datetime import UTC
from typing import Literal

from sqlalchemy.orm import Session

from verification.core.findings import Finding
from verification.pipeline.context import Context
from verification.pipeline.layout import pipeline_version, vault_key
from verification.pipeline.model import Analysis

log = logging.getLogger(__name__)


def record_preservation(
    ctx: Context, session: Session, analysis: Analysis, submission_id: int
) -> None:
    info, digests = analysis.info, analysis.digests
    assert info is not None and digests is not None
    sha, agents = digests.sha256, ctx.agents
    claims = analysis.claims.to_dict() if analysis.claims else {}
    ctx.ledger.append(
        sha,
        "ingestion",
        "success",
        {
            "submission": submission_id,
            "source": f"{ctx.store.url}/{info.key}",
            "etag": info.etag,
            "version_id": info.version_id,
            "received_at": info.last_modified.astimezone(UTC).isoformat(),
            "claims": claims,
            "vault_key": vault_key(sha),
            "vault_version": analysis.vault_version,
        },
        step_key=f"ingestion:{info.key}:{info.etag}",
        agents=agents,
        session=session,
    )
    ctx.ledger.append(
        sha,
        "message digest calculation",
        "success",
        {**digests.labelled(), "size": digests.size},
        step_key="digest",
        agents=agents,
        session=session,
    )
    vault = dict(analysis.vault_check)
    outcome = vault.pop("outcome", "not-run")
    ctx.ledger.append(
        sha,
        "fixity check",
        outcome,
        {"stage": "preservation", **vault},
        step_key=f"preservation:{info.key}:{info.etag}",
        agents=agents,
        session=session,
    )


def record_analysis_events(ctx: Context, session: Session, analysis: Analysis) -> None:
    """Format identification, metadata extraction and derivative creation events."""
    assert analysis.digests is not None
    sha, agents, version = analysis.digests.sha256, ctx.agents, pipeline_version()
    tools = [
        {"type": "software", "name": k, "version": v}
        for k, v in sorted(analysis.extractors.items())
    ]
    ctx.ledger.append(
        sha,
        "format identification",
        "success",
        dict(analysis.format),
        step_key="format",
        agents=agents,
        session=session,
    )
    unreadable = any(f.code == "unreadable" for f in analysis.item_findings)
    ctx.ledger.append(
        sha,
        "metadata extraction",
        "failure" if unreadable else "success",
        {
            "pipeline_version": version,
            "media": dict(analysis.media),
            "findings": [f.to_dict() for f in analysis.item_findings],
        },
        step_key=f"extraction:{version}",
        agents=[*agents, *tools],
        session=session,
    )
    for derivative in analysis.derivatives:
        ctx.ledger.append(
            sha,
            "creation",
            "success",
            {
                "derivative": derivative["key"],
                "sha256": derivative["sha256"],
                "mime": derivative["mime"],
            },
            step_key=f"derivative:{derivative['key']}:{derivative['sha256']}",
            agents=[*agents, {"type": "software", "name": derivative["tool"]}],
            session=session,
        )


def record_validation(
    ctx: Context,
    session: Session,
    analysis: Analysis,
    submission_id: int,
    status: str,
    reasons: list[str],
    findings: list[Finding],
) -> None:
    assert analysis.digests is not None and analysis.info is not None
    outcome: Literal["success", "warning"] = "success" if status == "consistent" else "warning"
    ctx.ledger.append(
        analysis.digests.sha256,
        "validation",
        outcome,
        {
            "pipeline_version": pipeline_version(),
            "submission": submission_id,
            "status": status,
            "status_reasons": reasons,
            "findings": sorted({f.code for f in findings}),
        },
        step_key=f"validation:{pipeline_version()}:{analysis.info.key}:{analysis.info.etag}",
        agents=ctx.agents,
        session=session,
    )
