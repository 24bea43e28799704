"""A chat agent for delivery tests: the OpenAI SDK on an in-process mock transport, no network.

Used in process (``client()``) and as a child process that a test may kill:

    python -m tests.instrumentation.chat_agent ENDPOINT CALLS FLUSH_MS [hang]

The child instruments itself (``instrument(endpoint=ENDPOINT)``), makes CALLS
chat calls, flushes for at most FLUSH_MS, prints ``done <flushed>`` and then
either exits (the atexit flush runs) or, with ``hang``, waits to be killed.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import openai

RESPONSE = {
    "id": "chatcmpl-delivery",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "JE-4471 may be approved."},
        }
    ],
    "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
}
MESSAGES = [{"role": "user", "content": "Should we approve journal entry JE-4471?"}]


def client() -> Any:
    if int(openai.__version__.split(".")[0]) >= 3:
        import httpx2 as httpx  # openai 3.x is built on httpx2
    else:  # pragma: no cover - older SDKs
        import httpx
    body = json.dumps(RESPONSE).encode()

    def handler(request: Any) -> Any:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    return openai.OpenAI(
        api_key="test",
        base_url="http://model.invalid/v1",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def calls(n: int, chat: Any | None = None) -> None:
    """``n`` chat calls, back to back."""
    chat = chat or client()
    create = chat.chat.completions.create
    for _ in range(n):
        create(model="gpt-4o", messages=MESSAGES)


def main(argv: list[str]) -> None:
    import agentledger

    endpoint, n, flush_ms = argv[0], int(argv[1]), int(argv[2])
    agentledger.instrument(
        endpoint=endpoint,
        service_name="delivery-agent",
        agent_name="delivery-agent",
        instrumentors=["openai"],
    )
    calls(n)
    print("done", agentledger.flush(flush_ms), flush=True)
    if argv[3:] == ["hang"]:
        time.sleep(600)


if __name__ == "__main__":
    main(sys.argv[1:])
