"""Database URLs are shown without their password, however the password is spelled."""

from __future__ import annotations

import pytest

from soniq import DatabaseUnavailableError, Soniq
from soniq.urls import redact, without_password


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://postgres:t@t@127.0.0.2:5432/db",
            "postgresql://postgres:***@127.0.0.2:5432/db",
        ),
        ("postgresql://u:p%40ss%3Aw@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:a:b:c@h/db", "postgresql://u:***@h/db"),
        (
            "postgres://u@h/db?password=s3cret&sslmode=require",
            "postgres://u@h/db?password=***&sslmode=require",
        ),
        ("postgresql://u:@h/db", "postgresql://u:***@h/db"),
        ("postgresql://h/db", "postgresql://h/db"),
        ("postgresql://u:p@[::1/db", "<unreadable URL>"),
    ],
)
def test_the_password_never_shows(url: str, shown: str) -> None:
    assert without_password(url) == shown


def test_urls_and_password_settings_in_free_text_are_redacted() -> None:
    text = "could not connect: postgresql://app:se cr@t@db:5432/x (password=hunter2 host=db)"
    assert redact(text, "postgresql://app:se cr@t@db:5432/x") == (
        "could not connect: postgresql://app:***@db:5432/x (password=*** host=db)"
    )
    assert "hunter2" not in redact("dsn: host=db password='hunter2 x'")
    assert "pw" not in redact("failed for postgres://me:pw@h/db, retrying")


async def test_an_unreachable_server_with_an_at_sign_in_the_password_shows_none_of_it() -> None:
    app = Soniq("postgresql://postgres:p@ss@127.0.0.1:1/postgres")
    try:
        with pytest.raises(DatabaseUnavailableError) as info:
            await app.enqueue("any.task")
    finally:
        await app.close()
    message = str(info.value)
    assert "p@ss" not in message and "ss@" not in message, message
    assert "postgresql://postgres:***@127.0.0.1:1/postgres" in message
