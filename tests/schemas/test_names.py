"""The name rule refuses what could escape a folder or a log line, and the settings apply it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentledger.collector.settings import CollectorSettings, parse_api_keys
from agentledger.schemas.names import is_valid_name, validate_name

GOOD = ["a", "acme", "Acme-Corp_2", "team.eu-west", "0", "x" * 64]
BAD = [
    "",
    ".",
    "..",
    ".hidden",
    "-rf",
    "a/b",
    "a\\b",
    "../etc",
    "a\x00b",
    "acme\n",
    "a b",
    "x" * 65,
    "tenant;DROP",
    "é",
]


@pytest.mark.parametrize("name", GOOD)
def test_good_names_pass_through(name: str) -> None:
    assert validate_name("tenant", name) == name


@pytest.mark.parametrize("name", BAD)
def test_bad_names_are_refused_with_the_rule(name: str) -> None:
    assert not is_valid_name(name)
    with pytest.raises(ValueError, match=r"invalid tenant name .*: must be 1 to 64 characters"):
        validate_name("tenant", name)


def test_message_names_the_kind_and_shows_control_characters() -> None:
    with pytest.raises(ValueError) as err:
        validate_name("key", "a\nb")
    assert "invalid key name 'a\\nb'" in str(err.value)
    assert "\n" not in str(err.value)


def test_non_strings_are_refused() -> None:
    with pytest.raises(ValueError, match="invalid tenant name 3"):
        validate_name("tenant", 3)


def test_api_keys_refuse_a_tenant_that_would_be_a_path() -> None:
    assert {k.tenant for k in parse_api_keys("acme=k1,beta=k2").values()} == {"acme", "beta"}
    with pytest.raises(ValueError, match="invalid tenant name '../x'"):
        parse_api_keys("../x=k1")
    with pytest.raises(ValidationError, match="invalid tenant name"):
        CollectorSettings(api_keys="a/b=secret")


def test_default_tenant_is_checked() -> None:
    assert CollectorSettings(default_tenant="local").default_tenant == "local"
    with pytest.raises(ValidationError, match="invalid tenant name '..'"):
        CollectorSettings(default_tenant="..")


def test_cli_tenant_option_is_checked(tmp_path) -> None:
    from typer.testing import CliRunner

    from agentledger.cli import app

    for args in (
        ["traces", "--tenant", "../x", "--data-dir", str(tmp_path)],
        ["verify", "--tenant", "a/b", "--data-dir", str(tmp_path)],
    ):
        result = CliRunner().invoke(app, args)
        text = " ".join(result.output.replace("│", " ").split())
        assert result.exit_code == 2 and "invalid tenant name" in text, (args, text)
    assert not list(tmp_path.iterdir())  # refused before any store was opened
