"""The console's SQL page in Debian's Chromium against the running ``serve``: a reader's query
answers with its own tenant's rows as a table and a chart, the examples run with one click, and a
refusal or a bad query shows ClickHouse's message."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentledger.pipeline.services.sql import EXAMPLES
from tests.sql.conftest import KEYS, Served
from tests.sql.test_clickhouse_endpoint import _wait_for_spans

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium (apt-get install -y chromium)"
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Any]:
    context = browser.new_context(base_url=served.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    made = context.new_page()
    made.goto("/console/sql")  # answers 401 with the sign-in form
    made.get_by_label("API key").fill(KEYS[("acme", "reader")])
    made.get_by_role("button", name="Sign in").click()
    made.wait_for_url("**/console/sql*")
    errors: list[str] = []  # from here on, a script error or a refused resource fails the test
    made.on("pageerror", lambda exc: errors.append(str(exc)))
    made.on(  # a refused query answers its page with a 4xx; a script, style or chart must not
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and r.request.resource_type != "document"
            else None
        ),
    )
    made.on("console", lambda m: errors.append(m.text) if "Content Security" in m.text else None)
    try:
        yield made
        assert errors == []  # no script error, no CSP violation
    finally:
        context.close()


def _run(page: Any, sql: str) -> None:
    page.get_by_label(re.compile("Query")).fill(sql)
    page.get_by_role("button", name="Run").click()
    page.wait_for_load_state("load")


def test_a_query_answers_with_the_tenants_rows_as_table_and_chart(
    page: Any, served: Served
) -> None:
    _wait_for_spans(served)
    _run(
        page,
        "SELECT toStartOfMinute(start_time) AS minute, count() AS spans, "
        "sum(input_tokens) AS input_tokens, any(tenant) AS who FROM spans "
        "GROUP BY minute ORDER BY minute",
    )
    table = page.get_by_test_id("sql-result")
    headers = table.locator("thead th").all_text_contents()
    assert headers == ["minute", "spans", "input_tokens", "who"]
    cells = table.locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert sum(int(c) for c in cells) == served.spans["acme"]
    assert set(table.locator("tbody tr td:nth-child(4)").all_inner_texts()) == {"acme"}
    chart = page.get_by_test_id("sql-chart")
    chart.locator("canvas").wait_for()
    assert int(chart.get_attribute("data-drawn")) == len(cells)
    assert "spans" in chart.locator(".u-legend").inner_text()


def test_every_example_is_one_click_away_and_runs(page: Any, served: Served) -> None:
    _wait_for_spans(served)
    examples = page.get_by_test_id("sql-examples")
    for example in EXAMPLES:
        examples.get_by_role("link", name=example.title).click()
        page.wait_for_load_state("load")
        assert page.get_by_label(re.compile("Query")).input_value() == example.sql
        assert page.get_by_test_id("sql-error").count() == 0, page.get_by_test_id(
            "sql-error"
        ).inner_text()
        assert page.get_by_test_id("sql-summary").is_visible()


def test_a_refusal_and_a_bad_query_show_clickhouses_message(page: Any) -> None:
    _run(page, "SELECT count() FROM agentledger.spans")
    assert "ACCESS_DENIED" in page.get_by_test_id("sql-error").inner_text()
    assert page.get_by_test_id("sql-result").count() == 0
    _run(page, "SELEC 1")
    assert "SYNTAX_ERROR" in page.get_by_test_id("sql-error").inner_text()
    _run(page, "DROP TABLE spans")
    assert "READONLY" in page.get_by_test_id("sql-error").inner_text()


def test_the_page_needs_a_reader(served: Served) -> None:
    ingest = httpx.get(
        f"{served.url}/console/sql",
        headers={"Authorization": f"Bearer {KEYS[('acme', 'ingest')]}"},
    )
    assert ingest.status_code == 403


def test_docs_queries_md_holds_every_example() -> None:
    text = (ROOT / "docs" / "queries.md").read_text()
    for example in EXAMPLES:
        assert f"### {example.title}\n\n{example.why}\n\n```sql\n{example.sql}\n```" in text
    assert 6 <= len(EXAMPLES) <= 10
