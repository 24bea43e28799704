"""Audit answers: what an agent saw before it acted, which model version decided, under whose authority.

An *action* is a TOOL span (a tool call the agent made) or an LLM span (a decision the
model made). Its audit lists, in order, everything of the same trace that had finished
before the action started, and nothing that started or finished later:

* every earlier LLM call: requested and answered model, system fingerprint, parameters,
  tools offered, the full input messages and the answer;
* every retrieved document: id, content hash, score, retrieval time and text;
* every earlier tool call: its arguments and its output;
* other finished steps, and the inputs of the steps still open around the action
  (the question that started the agent run);

plus the principal with its delegation chain and policy, the LLM call that chose the
action (its answered model and system fingerprint), the intent record of a governed
tool with its acknowledgement time, and the run controls (pauses, resumes) that applied
up to that acknowledgement. Every content record shown is re-hashed against its SHA-256.

"Before" is ``end_time <= action.start_time``: a span still running when the action
started (an enclosing agent span, a concurrent call) had not shown its output yet.
The action's own result is not part of what the agent saw and is left out.

Cost, whatever the table size: a handful of point queries, each served by the primary
key or a skip index: the span by ``span_id`` and the trace by ``trace_id`` (bloom
filters of ``spans``), contents by ``(tenant, hash)`` (primary key), intents by
``trace_id`` (bloom filter) and controls by tenant and time (primary key). Rows are not
read with ``FINAL`` (which would merge across the whole tenant's parts): a span
delivered twice is the same row twice, so copies are dropped by ``span_id`` here.

Modules, in the order an audit runs:

* :mod:`.locate` - the trace of a span or trace id, its actions, the contents to fetch;
* :mod:`.saw` - the entries of what the agent saw, each content re-hashed;
* :mod:`.authority` - the principal an action ran for, the LLM call that chose it;
* :mod:`.governance` - intents and run controls, when their tables exist;
* :mod:`.action` - one action's report, and ``audit``, which batches the reads;
* :mod:`.render` - Markdown and HTML.

Reading a recorded call (``Trace``, ``iso``, ``llm_parameters``...) is shared with replay in
:mod:`agentledger.pipeline.services.recorded`, so this package does not import replay.
"""

from agentledger.pipeline.services.audit.action import audit, audit_span
from agentledger.pipeline.services.audit.locate import AuditError, AuditNotFound, load_trace
from agentledger.pipeline.services.audit.render import to_html, to_markdown
from agentledger.pipeline.services.recorded import (
    Trace,
    iso,
    llm_parameters,
    offered_tools,
    system_fingerprint,
)

__all__ = [
    "AuditError",
    "AuditNotFound",
    "Trace",
    "audit",
    "audit_span",
    "iso",
    "llm_parameters",
    "load_trace",
    "offered_tools",
    "system_fingerprint",
    "to_html",
    "to_markdown",
]
