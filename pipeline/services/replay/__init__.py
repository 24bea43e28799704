"""Replay of recorded model decisions: rebuild the request, send it again, diff the answers.

**Rebuilding.** An LLM span's request is rebuilt from the canonical call the normalizer
recorded at ingest (``agentledger.schemas.calls``): the input messages (``contents`` under
``input_hash``), the tools offered (``tools_hash``), the request parameters
(``request_params``) and the requested model, in the provider's wire format (OpenAI chat
completions, or Anthropic messages). Where the instrumentation also recorded the request
itself (``raw_request_hash``; OpenInference does: the SDK call's arguments as JSON), that
recorded request is what replay sends, and the reconstruction is checked against it;
elsewhere the reconstruction is sent.

**Hashes** (``RebuiltRequest.checks``), all SHA-256 over the canonical form of
``agentledger.schemas.contents`` (sorted-key compact JSON):

* ``messages_sha256``: of the request's messages in the normalizer's canonical
  message shape. It must equal the span's ``input_hash``, which the pipeline
  recorded at ingest for every convention (and the ledger covers): this is *the
  hash recorded at call time* a replay is held to (``messages_match``).
* ``request_sha256``: of the whole request body sent (model, messages, tools,
  parameters), before replay's own overrides (``--model``, streaming off).
* ``recorded_request_sha256``: of the recorded request, whose stored text is first
  re-hashed against the content hash it is stored under (``recorded_request_intact``);
  ``reconstruction_exact`` says whether the request rebuilt from messages, tools,
  parameters and model hashes the same.
* ``request_hash``: the span's ``request_hash`` (``agentledger.schemas.calls.request_hash``),
  which names the same request whichever convention recorded it.

**Diffing.** The new answer is compared with the recorded one (canonical output
messages): the same tools chosen in the same order, the same arguments (as JSON
values), and the text's similarity (``difflib`` ratio; token Jaccard as well). No
difference at all is zero drift. ``replay_many`` does this for many recorded calls
and sums it up as a drift report, stored in the record log (a ``drift_report`` record) with links
to the source spans, so that switching models can be run as a regression test.

Modules: :mod:`.rebuild` (recorded calls rebuilt as requests), :mod:`.wire` (provider wire
formats to and from canonical messages), :mod:`.send` (the provider's SDK, one replay),
:mod:`.answers` (answers and their difference), :mod:`.drift` (many replays summed up) and
:mod:`.storage` (drift reports in the store). This package does not import audit: both read
recorded calls through :mod:`agentledger.pipeline.services.recorded`.
"""

from agentledger.pipeline.services.replay.answers import Answer, Diff, compare
from agentledger.pipeline.services.replay.drift import DriftReport, replay_many, summarize
from agentledger.pipeline.services.replay.rebuild import (
    RebuiltRequest,
    ReplayError,
    ReplayNotFound,
    rebuild_request,
    rebuild_requests,
    select_calls,
)
from agentledger.pipeline.services.replay.send import (
    ReplayOutcome,
    Sender,
    answer_of_response,
    replay_request,
    replay_span,
    send_request,
)
from agentledger.pipeline.services.replay.storage import (
    DRIFT_REPORTS_VIEW,
    ReportConflict,
    get_report,
    list_reports,
    save_report,
)
from agentledger.pipeline.services.replay.wire import ANTHROPIC, OPENAI, canonical_messages

__all__ = [
    "ANTHROPIC",
    "OPENAI",
    "DRIFT_REPORTS_VIEW",
    "Answer",
    "Diff",
    "DriftReport",
    "RebuiltRequest",
    "ReplayError",
    "ReplayNotFound",
    "ReplayOutcome",
    "Sender",
    "answer_of_response",
    "canonical_messages",
    "compare",
    "get_report",
    "list_reports",
    "rebuild_request",
    "rebuild_requests",
    "replay_many",
    "replay_request",
    "replay_span",
    "save_report",
    "ReportConflict",
    "select_calls",
    "send_request",
    "summarize",
]
