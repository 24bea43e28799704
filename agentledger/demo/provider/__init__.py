"""A scripted LLM provider: a local HTTP server that answers like OpenAI and Anthropic.

Why it exists: the demo and the tests must exercise the *real* SDKs and the
*real* instrumentation (which read wire formats, SSE streams, usage blocks and
answered-model names) without network access, API keys or non-determinism.
So instead of mocking the SDK, this module runs a tiny server on 127.0.0.1
that speaks the two wire protocols and answers from a script.

A script is an ordered list of :class:`Rule`. Each rule pairs a matcher (a
predicate on the parsed :class:`ProviderRequest`) with a
:class:`ScriptedResponse` (or a function building one from the request). The
first matching rule answers; if none matches, the provider's default response
does. The same script serves both APIs: tool calls become OpenAI ``tool_calls``
or Anthropic ``tool_use`` blocks, finish reasons are translated.

Everything that would vary between runs against a real provider is made
deterministic: ids come from per-provider counters (``chatcmpl-1``,
``call_1``, ``msg_1``, ``toolu_1``) and token counts default to a function of
the request and response lengths.

Modules: :mod:`.request` (the request as received), :mod:`.script` (rules, answers,
matchers), :mod:`.wire` (usage, finish reasons, SSE, error bodies), :mod:`.handler` (the
HTTP server and handler), :mod:`.server` (``ScriptedProvider``) and :mod:`.finance` (the
demo's script).
"""

from agentledger.demo.provider.finance import (
    DEFAULT_RESPONSE,
    FIN7_THRESHOLD,
    default_script,
    demo_provider,
)
from agentledger.demo.provider.request import Api, ProviderRequest, ToolResult
from agentledger.demo.provider.script import (
    Matcher,
    Responder,
    Rule,
    ScriptedResponse,
    ToolCall,
    all_of,
    always,
    any_of,
    api_is,
    has_tool_result,
    last_user_contains,
    model_is,
    negate,
    offers_tool,
    system_contains,
)
from agentledger.demo.provider.server import (
    DEFAULT_MODEL_ALIASES,
    DEFAULT_SYSTEM_FINGERPRINT,
    ScriptedProvider,
)
from agentledger.demo.provider.wire import estimate_tokens

__all__ = [
    "DEFAULT_MODEL_ALIASES",
    "DEFAULT_RESPONSE",
    "DEFAULT_SYSTEM_FINGERPRINT",
    "FIN7_THRESHOLD",
    "Api",
    "Matcher",
    "ProviderRequest",
    "Responder",
    "Rule",
    "ScriptedProvider",
    "ScriptedResponse",
    "ToolCall",
    "ToolResult",
    "all_of",
    "always",
    "any_of",
    "api_is",
    "default_script",
    "demo_provider",
    "estimate_tokens",
    "has_tool_result",
    "last_user_contains",
    "model_is",
    "negate",
    "offers_tool",
    "system_contains",
]
