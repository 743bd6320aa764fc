"""A consumer built by an app factory, for ``soniq worker MODULE:create_app --factory``."""

from __future__ import annotations

from soniq import Soniq


def create_app() -> Soniq:
    app = Soniq()

    @app.job(name="factory.hello")
    async def hello(name: str) -> str:
        return f"hello {name}"

    return app


def not_an_app() -> int:
    return 42


# An app whose settings are fixed in code: `soniq worker --schema` cannot move it.
pinned = Soniq("postgresql://nobody@127.0.0.1:1/none", schema="pinned")
