"""Redaction and capture switches at the edge: what the collector received, byte for byte."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

import agentledger
from agentledger.instrumentation import RedactionPolicy
from agentledger.instrumentation.redaction import Redactor, iban_valid, luhn_valid
from agentledger.pipeline.services import queries
from agentledger.schemas.attributes import AgentLedger as AL
from tests.instrumentation.conftest import attrs_of

EMAIL = "jane.doe@acme-corp.example"
PHONE = "+1 415-555-0134"
CARD = "4111 1111 1111 1111"  # Luhn-valid test card
NOT_A_CARD = "4111 1111 1111 1112"  # fails Luhn: left alone
IBAN = "DE89 3704 0044 0532 0130 00"
NOT_AN_IBAN = "DE00370400440532013000"  # bad check digits: left alone
API_KEY = "sk-proj-AbCdEf0123456789XyZabcdef0123"
SECRETS = [EMAIL, PHONE, CARD, IBAN, API_KEY, CARD.replace(" ", ""), IBAN.replace(" ", "")]


def test_presets_and_checksums() -> None:
    r = Redactor(RedactionPolicy())
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid(NOT_AN_IBAN)
    text = (
        f"mail {EMAIL}, call {PHONE} or (212) 555-0199, card {CARD}, not {NOT_A_CARD}, "
        f"iban {IBAN}, not {NOT_AN_IBAN}, key {API_KEY}, Authorization: Bearer abcdefghijklmnop0123, "
        'config {"api_key": "s3cr3tValue99"}, on 2024-01-01 moved USD 4,000,000 in JE-4471'
    )
    out = r.text(text)
    for secret in [
        EMAIL,
        PHONE,
        "(212) 555-0199",
        CARD,
        IBAN,
        API_KEY,
        "abcdefghijklmnop0123",
        "s3cr3tValue99",
    ]:
        assert secret not in out
    for kept in [NOT_A_CARD, NOT_AN_IBAN, "2024-01-01", "USD 4,000,000", "JE-4471"]:
        assert kept in out
    assert out.count("[REDACTED:") == 8
    assert '{"api_key": "[REDACTED:SECRET]"}' in out  # JSON stays valid
    only_email = Redactor(RedactionPolicy.of("email"))
    assert only_email.text(f"{EMAIL} {CARD}") == f"[REDACTED:EMAIL] {CARD}"
    with pytest.raises(ValueError, match="unknown redaction presets"):
        RedactionPolicy.of("email,ssn")


def test_planted_secrets_never_leave_the_process(
    server: Any, provider: Any, proxy: Any, instrumented: Any
) -> None:
    def hook(key: str, value: str) -> str | None:
        return None if key == "user.id" else value.replace("Project Falcon", "[CODENAME]")

    policy = RedactionPolicy(hook=hook, name="acme-pii", version="3")
    instrumented(instrumentors=["openai"], redact=policy)
    question = (
        f"Customer {EMAIL} (phone {PHONE}) paid with card {CARD} from IBAN {IBAN} for Project Falcon; "
        f"our key is {API_KEY}. Card {NOT_A_CARD} was declined. Check JE-4471."
    )
    with agentledger.acting_for("controller@acme.example", policy="FIN-7"):
        with agentledger.retrieval("refund policy") as r:
            r.documents(
                [{"id": "DOC-1", "content": f"Refunds go to IBAN {IBAN}; questions to {EMAIL}."}]
            )
        with agentledger.tool("issue_refund", arguments={"card": CARD, "email": EMAIL}) as t:
            t.result({"status": "ok", "contact": PHONE})
        with openai.OpenAI(base_url=provider.base_url, api_key="test") as client:
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": question}]
            )
    assert (
        provider.requests[-1].messages[0]["content"] == question
    )  # the provider got the real text
    assert agentledger.flush()

    raw = proxy.raw()  # exactly what left the process
    assert raw
    for secret in SECRETS + ["Project Falcon"]:
        assert secret.encode() not in raw, secret
    assert NOT_A_CARD.encode() in raw and b"JE-4471" in raw
    for marker in ("EMAIL", "PHONE", "CARD", "IBAN", "SECRET"):
        assert f"[REDACTED:{marker}]".encode() in raw
    exported = proxy.spans()
    assert len(exported) == 3
    for span in exported:
        attrs = attrs_of(span)
        assert attrs[AL.REDACTION_POLICY] == "acme-pii@3"
        assert attrs[AL.PRINCIPAL_ID] == "controller@acme.example"  # attribution is never rewritten
    llm = next(attrs_of(s) for s in exported if attrs_of(s).get("openinference.span.kind") == "LLM")
    assert llm[AL.REDACTION_COUNT] >= 1

    # and what the store holds
    spans = [
        s
        for t in queries.list_traces(server.store, "default")
        for s in queries.get_trace(server.store, "default", t["trace_id"])
    ]
    assert len(spans) == 3
    hashes = [h for s in spans for h in (s["input_hash"], s["output_hash"]) if h]
    hashes += [d["content_hash"] for s in spans for d in s["documents"]]
    stored = " ".join(
        c["content"] for c in queries.get_contents(server.store, "default", hashes).values()
    )
    assert "[REDACTED:CARD]" in stored and "[REDACTED:IBAN]" in stored
    assert all(secret not in stored for secret in SECRETS)
    tool = next(s for s in spans if s["kind"] == "TOOL")
    args = json.loads(
        queries.get_contents(server.store, "default", [tool["input_hash"]])[tool["input_hash"]][
            "content"
        ]
    )
    assert args == {"card": "[REDACTED:CARD]", "email": "[REDACTED:EMAIL]"}


def test_a_failing_hook_drops_the_span_not_the_call(
    server: Any, provider: Any, proxy: Any, instrumented: Any
) -> None:
    def broken(key: str, value: str) -> str:
        raise RuntimeError("hook bug")

    instrumented(instrumentors=["openai"], redact=broken)
    with openai.OpenAI(base_url=provider.base_url, api_key="test") as client:
        answer = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": EMAIL}]
        )
    assert answer.choices[0].message.content  # the agent is unaffected
    assert agentledger.flush()
    # fail closed: nothing unredacted was exported, only the count of what was lost
    (report,) = proxy.spans()
    assert report.name == "agentledger.spans_lost"
    assert attrs_of(report)["agentledger.spans_lost.count"] == 1
    assert attrs_of(report)["agentledger.spans_lost.reasons"] == ["not redactable=1"]


@pytest.mark.parametrize("kind", ["messages", "documents", "tool_io"])
def test_capture_switches(
    server: Any, provider: Any, proxy: Any, instrumented: Any, kind: str
) -> None:
    instrumented(instrumentors=["openai"], capture={kind: False})
    with agentledger.acting_for("controller@acme.example"):
        with agentledger.retrieval("refund policy") as r:
            r.documents([{"id": "DOC-1", "content": "SECRET-DOCUMENT-TEXT", "score": 0.9}])
        with agentledger.tool("lookup", arguments={"entry_id": "SECRET-TOOL-ARG"}) as t:
            t.result("SECRET-TOOL-RESULT")
        with openai.OpenAI(base_url=provider.base_url, api_key="test") as client:
            client.chat.completions.create(
                model="gpt-4o",
                messages=[
                    {"role": "user", "content": "SECRET-PROMPT JE-4471"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {
                                    "name": "lookup",
                                    "arguments": '{"entry_id": "SECRET-CALL-ARG"}',
                                },
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": "SECRET-TOOL-MESSAGE"},
                ],
            )
    assert agentledger.flush()
    raw = proxy.raw()
    hidden = {
        "messages": [b"SECRET-PROMPT"],
        "documents": [b"SECRET-DOCUMENT-TEXT"],
        "tool_io": [
            b"SECRET-TOOL-ARG",
            b"SECRET-TOOL-RESULT",
            b"SECRET-CALL-ARG",
            b"SECRET-TOOL-MESSAGE",
        ],
    }
    for k, needles in hidden.items():
        for needle in needles:
            assert (needle in raw) == (k != kind), (k, needle)
    # structure stays: the document id, the tool name, the roles
    assert b"DOC-1" in raw and b"lookup" in raw and b"message.role" in raw
    assert all(attrs_of(s)[AL.CAPTURE_OMITTED] == [kind] for s in proxy.spans())


def test_openinference_trace_config_follows_the_capture_switches() -> None:
    from openinference.instrumentation import TraceConfig

    from agentledger.instrumentation import CaptureConfig

    def masked(capture: CaptureConfig, key: str) -> object:
        return TraceConfig(**capture.trace_config_kwargs()).mask(key, "SECRET")

    everything = CaptureConfig()
    assert masked(everything, "llm.input_messages.0.message.content") == "SECRET"
    no_messages = CaptureConfig(messages=False)
    assert masked(no_messages, "llm.input_messages.0.message.content") != "SECRET"
    assert masked(no_messages, "llm.output_messages.0.message.content") != "SECRET"
    assert (
        masked(no_messages, "input.value") == "SECRET"
    )  # a TOOL span's input: tool_io is still on
    no_docs = CaptureConfig(documents=False)
    assert masked(no_docs, "retrieval.documents.0.document.content") != "SECRET"
    assert masked(CaptureConfig(messages=False, tool_io=False), "input.value") != "SECRET"
