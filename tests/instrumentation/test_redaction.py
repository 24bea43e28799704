"""The agent-side redactor: linear time on pathological text, RE2 rules only, and a redaction that
fails (here: no ``re2`` to import) drops the span, never the agent's call."""

from __future__ import annotations

import re
import sys
from typing import Any

import openai
import pytest

import agentledger
from agentledger.instrumentation import redaction
from agentledger.instrumentation.redaction import PRESETS, RedactionPolicy, Redactor
from agentledger.schemas import pii
from tests.schemas.pii_inputs import LIMIT, PATHOLOGICAL, best_of_3

CASES = [(preset, name) for preset, texts in PATHOLOGICAL.items() for name in texts]


@pytest.mark.parametrize(("preset", "name"), CASES)
def test_each_preset_redacts_pathological_text_in_linear_time(preset: str, name: str) -> None:
    text = PATHOLOGICAL[preset][name]
    for redactor in (Redactor(RedactionPolicy.of(preset)), Redactor(RedactionPolicy())):
        elapsed = best_of_3(redactor.text, text)
        assert elapsed < LIMIT, f"{redactor.policy.presets} on {name}: {elapsed * 1000:.0f} ms"


def test_the_dotted_text_is_left_as_it_is() -> None:
    text = PATHOLOGICAL["email"]["a.a.a…@x"]
    assert Redactor(RedactionPolicy()).text(text) == text


def test_the_presets_and_their_tests_are_re2_rules() -> None:
    assert all(isinstance(pattern, pii.Rule) for pattern, _, _ in PRESETS.values())
    assert isinstance(redaction._SECRET_HINT, pii.Rule)
    assert isinstance(redaction._NUMBER_RUN, pii.Rule)
    assert not any(value is re for value in vars(redaction).values())


def _rules() -> list[pii.Rule]:
    found = [v for v in vars(pii).values() if isinstance(v, pii.Rule)]
    return found + [redaction._SECRET_HINT, redaction._NUMBER_RUN]


def test_without_re2_the_span_is_dropped_not_the_call(
    server: Any,
    provider: Any,
    proxy: Any,
    instrumented: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for rule in _rules():
        monkeypatch.setattr(rule, "_programs", None)  # compile again on first use...
    monkeypatch.setitem(sys.modules, "re2", None)  # ...where `import re2` now fails
    instrumented(instrumentors=["openai"], redact=True)
    with openai.OpenAI(base_url=provider.base_url, api_key="test") as client:
        answer = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "mail jane.doe@acme.example"}]
        )
    assert answer.choices[0].message.content  # the agent is unaffected
    assert agentledger.flush()
    # fail closed: nothing unredacted was exported, only the count of what was lost
    assert [s.name for s in proxy.spans()] == ["agentledger.spans_lost"]
    assert "could not be redacted" in caplog.text and "re2" in caplog.text
