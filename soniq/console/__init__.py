"""The Soniq Console: a web console for operators, mounted in a service or served alone.

``app.console()`` builds it from an app (see :meth:`soniq.Soniq.console`); ``soniq console``
serves it with uvicorn. Needs the ``console`` extra (Starlette and Jinja2). docs/console.md.
"""

from soniq.console.web import BasicAuth, Console, Permission

__all__ = ["BasicAuth", "Console", "Permission"]
