"""The review layer: what analysts see and do, shared by the Airflow plugin and the CLI.

Owns the queue and case views and the list of unprocessed submissions (:mod:`.queries`), what
the queue shows at a glance and what a case export reveals of other cases (:mod:`.glance`),
review state, comments and assignment (:mod:`.state`), per-case access (:mod:`.access`), decisions and access to originals as custody events (:mod:`.actions`), and case exports as
downloads (:mod:`.downloads`). May import the exports, pipeline, ledger and core layers; only
the CLI and the plugin import it.
"""

from __future__ import annotations

from verification.ledger.review_events import current_decision, decisions
from verification.review.access import CaseScope, item_visible, scope_for, scoped_report
from verification.review.actions import (
    DECISIONS,
    MAX_NOTE,
    MAX_PURPOSE,
    Decision,
    record_access,
    record_decision,
)
from verification.review.downloads import (
    DOWNLOAD_DESTINATION,
    EXPORT_MEDIA_TYPES,
    Download,
    export_download,
    zip_bag,
)
from verification.review.filters import in_cases
from verification.review.glance import (
    CaseSubmission,
    Exposure,
    Glance,
    case_submissions,
    exposure,
    glances,
    latest_record,
)
from verification.review.queries import (
    DEFAULT_SORT,
    FIXITY_FILTERS,
    MAX_PAGE_SIZE,
    PROBLEM_STATES,
    REVIEW_FILTERS,
    SORT_LABELS,
    SORTS,
    STATUSES,
    CaseSummary,
    Page,
    Problem,
    Problems,
    QueueFilters,
    QueueRow,
    ReviewError,
    case_summary,
    cases,
    finding_codes,
    intake_problems,
    queue,
)
from verification.review.state import (
    ReviewState,
    action_of,
    assign,
    record_comment,
    review_state,
)

__all__ = [
    "DECISIONS",
    "DEFAULT_SORT",
    "DOWNLOAD_DESTINATION",
    "EXPORT_MEDIA_TYPES",
    "FIXITY_FILTERS",
    "MAX_NOTE",
    "MAX_PAGE_SIZE",
    "MAX_PURPOSE",
    "PROBLEM_STATES",
    "REVIEW_FILTERS",
    "SORTS",
    "SORT_LABELS",
    "STATUSES",
    "CaseScope",
    "CaseSubmission",
    "CaseSummary",
    "Decision",
    "Download",
    "Exposure",
    "Glance",
    "Page",
    "Problem",
    "Problems",
    "QueueFilters",
    "QueueRow",
    "ReviewError",
    "ReviewState",
    "action_of",
    "assign",
    "case_submissions",
    "case_summary",
    "cases",
    "current_decision",
    "decisions",
    "export_download",
    "exposure",
    "finding_codes",
    "glances",
    "in_cases",
    "intake_problems",
    "item_visible",
    "latest_record",
    "queue",
    "record_access",
    "record_comment",
    "record_decision",
    "review_state",
    "scope_for",
    "scoped_report",
    "zip_bag",
]
