"""The demo's small world: a finance policy corpus and a ledger of journal entries.

Both the sample agent (which retrieves policies and looks up entries) and the
scripted provider (whose default script plays the model that reasons over them)
read from here, so the two cannot drift apart: the tool name the model calls is
the tool the agent offers, and the limits the model cites are the ones in the
corpus.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HAND_OFF",
    "HAND_OFF_SCHEMA",
    "JOURNAL_ENTRIES",
    "LOOKUP_JOURNAL_ENTRY",
    "LOOKUP_JOURNAL_ENTRY_SCHEMA",
    "POLICY_CORPUS",
    "POST_CONTROLS_DECISION",
    "ROSTER",
    "PolicyDocument",
    "RetrievedDocument",
    "lookup_journal_entry",
    "post_controls_decision",
    "search_policies",
]

LOOKUP_JOURNAL_ENTRY = "lookup_journal_entry"
"""Name of the one tool the finance agent offers the model."""

LOOKUP_JOURNAL_ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "entry_id": {
            "type": "string",
            "description": "Journal entry identifier, e.g. JE-4471.",
        }
    },
    "required": ["entry_id"],
    "additionalProperties": False,
}
"""JSON schema of the tool's arguments, as sent to the model and recorded on the TOOL span."""

ROSTER: dict[str, str] = {
    "finance-controls-agent": (
        "reviews a journal entry against the approval policies and posts the controls decision"
    ),
}
"""The agents the planner may hand work to, and what each does (the planner's prompt lists them)."""

HAND_OFF = "hand_off"
"""The planner's one tool: give a work item to another agent (over the demo's queue)."""

HAND_OFF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "agent": {"type": "string", "enum": sorted(ROSTER), "description": "Who does the work."},
        "entry_id": {"type": "string", "description": "The journal entry, e.g. JE-4471."},
        "task": {"type": "string", "description": "What the agent is to do, in one sentence."},
    },
    "required": ["agent", "entry_id", "task"],
    "additionalProperties": False,
}

POST_CONTROLS_DECISION = "post_controls_decision"
"""The executor's governed tool: record the review's outcome on the entry's approval workflow."""


@dataclass(frozen=True)
class PolicyDocument:
    """One controls policy, short enough to paste into a prompt whole."""

    id: str
    title: str
    content: str
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrievedDocument:
    """A policy as returned by retrieval: the document plus why it was chosen (its score)."""

    document: PolicyDocument
    score: float

    @property
    def id(self) -> str:
        return self.document.id


POLICY_CORPUS: tuple[PolicyDocument, ...] = (
    PolicyDocument(
        id="FIN-7",
        title="Manual journal entries and reclassifications",
        content=(
            "Manual journal entries and reclassifications between general ledger accounts "
            "above USD 1,000,000 require approval by the Corporate Controller and the CFO "
            "before posting. The approver must differ from the preparer. Reclassifications "
            "that move amounts between balance sheet and income statement accounts must "
            "attach a reconciliation and a written business rationale."
        ),
        metadata={"owner": "Corporate Controller", "version": "4.2", "effective": "2024-01-01"},
    ),
    PolicyDocument(
        id="FIN-12",
        title="Approval limits (delegation of authority)",
        content=(
            "Approval limits per role: Senior Accountant up to USD 250,000; Accounting Manager "
            "up to USD 1,000,000; Corporate Controller up to USD 5,000,000; CFO without limit. "
            "An approval above the approver's limit is void and the entry must be escalated "
            "to the next level."
        ),
        metadata={"owner": "CFO", "version": "2.0", "effective": "2023-07-01"},
    ),
    PolicyDocument(
        id="FIN-19",
        title="Period-end close and cut-off",
        content=(
            "During the period-end close window (last three business days of the quarter) "
            "manual entries above USD 500,000 are frozen unless the Controller grants an "
            "exception. Entries posted after cut-off are recorded in the next period."
        ),
        metadata={"owner": "Financial Reporting", "version": "1.3", "effective": "2024-04-01"},
    ),
    PolicyDocument(
        id="SOX-3",
        title="Segregation of duties",
        content=(
            "No single person may prepare, approve and post the same journal entry. System "
            "access must prevent preparers from approving their own entries; any override is "
            "logged and reviewed monthly by Internal Audit."
        ),
        metadata={"owner": "Internal Audit", "version": "3.1", "effective": "2022-10-01"},
    ),
    PolicyDocument(
        id="TRV-2",
        title="Travel and expense reimbursement",
        content=(
            "Employees are reimbursed for economy-class travel and reasonable meals with "
            "itemised receipts submitted within 30 days of the trip."
        ),
        metadata={"owner": "HR", "version": "5.0", "effective": "2024-02-15"},
    ),
)

JOURNAL_ENTRIES: dict[str, dict[str, Any]] = {
    "JE-4471": {
        "entry_id": "JE-4471",
        "type": "reclassification",
        "amount": 4_000_000,
        "currency": "USD",
        "period": "2024-Q3",
        "description": "Reclassify capitalised software costs to R&D expense",
        "lines": [
            {"account": "6410 R&D Expense", "debit": 4_000_000, "credit": 0},
            {"account": "1750 Capitalised Software", "debit": 0, "credit": 4_000_000},
        ],
        "preparer": {
            "name": "Dana Whitfield",
            "role": "Senior Accountant",
            "email": "dana.whitfield@acme-corp.example",
        },
        "requested_approver": {
            "name": "Marco Rossi",
            "role": "Accounting Manager",
            "approval_limit": 1_000_000,
        },
        "attachments": ["reconciliation_q3_capsoft.xlsx"],
        "status": "pending_approval",
    },
}
"""The ledger the tool reads. Only JE-4471 exists; other ids return a not-found record."""

# fmt: off
_STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "i", "if",
    "in", "is", "it", "of", "on", "or", "our", "should", "so", "that", "the", "this", "to",
    "we", "what", "when", "whether", "which", "with",
})
# fmt: on
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _keywords(text: str) -> set[str]:
    """Lower-cased content words; a plural "s" is dropped so "reclassifications" matches."""
    words = (w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS)
    return {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words}


def search_policies(
    query: str,
    *,
    top_k: int = 3,
    corpus: tuple[PolicyDocument, ...] = POLICY_CORPUS,
) -> list[RetrievedDocument]:
    """Rank policies by keyword overlap with the query.

    Deliberately simple and deterministic (the share of query keywords found in
    the document's title and text): the demo is about what gets recorded, not
    about retrieval quality, and tests need stable scores.
    """
    wanted = _keywords(query)
    if not wanted:
        return []
    scored = []
    for doc in corpus:
        overlap = len(wanted & _keywords(f"{doc.title} {doc.content}"))
        if overlap:
            scored.append(RetrievedDocument(doc, round(overlap / len(wanted), 4)))
    scored.sort(key=lambda r: (-r.score, r.document.id))
    return scored[:top_k]


def lookup_journal_entry(entry_id: str) -> dict[str, Any]:
    """Return the ledger record for an entry, or a not-found record the model can reason about."""
    record = JOURNAL_ENTRIES.get(entry_id.strip().upper())
    if record is None:
        return {"entry_id": entry_id, "error": "not_found"}
    return dict(record)


_DECISIONS: dict[str, dict[str, Any]] = {}
"""What ``post_controls_decision`` posted, by entry (the demo's approval workflow)."""


def post_controls_decision(entry_id: str, decision: str, route_to: list[str]) -> dict[str, Any]:
    """Post a review's outcome on an entry: escalations go to the named approvers' queues.

    Deterministic (no clock, no random ids) so that two runs of the demo post the same record.
    """
    record = JOURNAL_ENTRIES.get(entry_id.strip().upper())
    if record is None:
        return {"entry_id": entry_id, "error": "not_found"}
    posted = {
        "entry_id": record["entry_id"],
        "decision": decision.upper(),
        "routed_to": list(route_to),
        "workflow_item": f"CTRL-{record['entry_id'].split('-')[-1]}",
        "status": "awaiting_approval" if decision.upper() == "ESCALATE" else "approved",
    }
    _DECISIONS[record["entry_id"]] = posted
    return dict(posted)
