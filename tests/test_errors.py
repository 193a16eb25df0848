"""One error root: what a person can fix is one red line and exit code 2; a bug keeps its traceback."""

from __future__ import annotations

import pytest
import typer

from broadcaster.cli.runtime import user_errors
from broadcaster.config import BrandSettings, ConfigError
from broadcaster.db import DatabaseNotReady
from broadcaster.delivery.subscribers import ImportError_
from broadcaster.errors import BroadcasterError, ConfigurationError, InvalidInput, NotFound
from broadcaster.inbox.actions import UnknownConversation
from broadcaster.models import utcnow
from broadcaster.publishing.drafting import PublishError
from broadcaster.timeparse import parse_future


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("config.toml: channels.telegram.token: environment variable TG_TOKEN is not set"),
        DatabaseNotReady("the database has no schema: run `broadcaster init`"),
        PublishError("unknown component 'checkuot'"),
        ImportError_(["line 3: 'paul@': not an e-mail address"]),
        UnknownConversation("no conversation #9"),
    ],
)
def test_what_a_person_can_fix_is_one_line_and_exit_code_2(
    error: BroadcasterError, capsys: pytest.CaptureFixture[str]
) -> None:
    @user_errors
    def command() -> None:
        raise error

    with pytest.raises(typer.Exit) as exited:
        command()
    assert exited.value.exit_code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


@pytest.mark.parametrize("bug", [KeyError("channel"), ValueError("unknown status 'oops'"), TypeError("x")])
def test_a_programming_error_is_not_dressed_as_a_user_error(bug: Exception) -> None:
    @user_errors
    def command() -> None:
        raise bug

    with pytest.raises(type(bug)):
        command()


def test_the_kinds_are_also_the_builtin_errors_older_callers_catch() -> None:
    assert issubclass(InvalidInput, ValueError) and issubclass(NotFound, LookupError)
    assert issubclass(ConfigError, ConfigurationError) and issubclass(UnknownConversation, NotFound)
    with pytest.raises(InvalidInput, match="--eta"):
        parse_future("--eta", "soon", now=utcnow(), brand=BrandSettings())
