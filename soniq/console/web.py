"""The console's HTTP side: routes, permissions, CSRF, rendering and basic auth.

Read-only unless a permission allows an action; every mutating request is a POST carrying
the CSRF token of its page (double-submit: the token is also in a SameSite=Strict cookie),
and a refused one answers 403 having changed nothing.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from soniq.console import pages
from soniq.console.live import LiveFeed
from soniq.console.pages import Parts
from soniq.db.jobs.browse import STATES
from soniq.db.jobs.browse_values import JobFilter
from soniq.errors import SoniqError

# can(request, action, job) -> allowed; action is "cancel", "retry", "replay" or "purge",
# job the job's row (a dict of the jobs view's columns) or None for a bulk action.
Permission = Callable[[Request, str, Mapping[str, Any] | None], bool]

_CSRF_COOKIE = "soniq_console_csrf"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _visible(text: object) -> str:
    """Control characters (terminal escapes among them) shown as ``\\xNN`` instead of sent."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", "" if text is None else str(text))


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("soniq.console", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(visible=_visible, when=_when, age=_age)
    return env


class Console:
    """The console's pages over ``parts``; :meth:`asgi` is the app to mount or serve."""

    def __init__(self, parts: Parts, *, can: Permission) -> None:
        self.parts = parts
        self.can = can
        self.live = LiveFeed(parts.database, parts.store)
        self.templates = _environment()

    # -- plumbing --------------------------------------------------------------------

    def render(self, request: Request, template: str, status: int = 200, **values: Any) -> Response:
        token = request.cookies.get(_CSRF_COOKIE) or secrets.token_urlsafe(32)
        base: str = request.scope.get("root_path", "").rstrip("/")

        def url(path: str, **params: Any) -> str:
            query = {k: v for k, v in params.items() if v not in (None, "")}
            return base + path + ("?" + urlencode(query) if query else "")

        html = self.templates.get_template(template).render(
            request=request,
            url=url,
            csrf=token,
            current=template.removesuffix(".html"),
            live_available=self.live.available,
            **values,
        )
        response = HTMLResponse(html, status_code=status)
        if request.cookies.get(_CSRF_COOKIE) != token:
            response.set_cookie(
                _CSRF_COOKIE, token, httponly=True, samesite="strict", path=base or "/"
            )
        return response

    def allowed(self, request: Request, action: str, job: Mapping[str, Any] | None) -> bool:
        return self.can(request, action, job)

    async def form(self, request: Request) -> dict[str, list[str]] | None:
        """The POSTed form, or None when its CSRF token does not match the cookie's."""
        body = (await request.body()).decode("utf-8", "replace")
        form = parse_qs(body, keep_blank_values=True)
        cookie = request.cookies.get(_CSRF_COOKIE, "")
        sent = (form.get("csrf") or [""])[0]
        if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
            return None
        return form

    def refused(self, request: Request, why: str) -> Response:
        return self.render(request, "refused.html", status=403, why=why)

    def back(self, request: Request, path: str, **params: Any) -> Response:
        base: str = request.scope.get("root_path", "").rstrip("/")
        query = {k: v for k, v in params.items() if v not in (None, "")}
        return RedirectResponse(
            base + path + ("?" + urlencode(query) if query else ""), status_code=303
        )

    # -- pages -----------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        data = await pages.overview(self.parts)
        peak = max([done + dead for _, done, dead in data.minutes] + [1])
        done = sum(done for _, done, _ in data.minutes)
        dead = sum(dead for _, _, dead in data.minutes)
        return self.render(
            request,
            "overview.html",
            data=data,
            peak=peak,
            done=done,
            dead=dead,
            cap=pages.COUNT_CAP,
        )

    async def jobs(self, request: Request) -> Response:
        q = request.query_params
        problems = []
        args = None
        if q.get("args"):
            try:
                args = json.loads(q["args"])
                if not isinstance(args, dict):
                    raise ValueError
            except ValueError:
                problems.append('args must be a JSON object, such as {"customer": "acme"}')
                args = None
        times: dict[str, datetime | None] = {}
        for name in ("since", "until"):
            times[name] = None
            if q.get(name):
                try:
                    value = datetime.fromisoformat(q[name])
                    times[name] = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
                except ValueError:
                    problems.append(f"{name} must be a time such as 2026-01-31T12:00 (UTC)")
        state = q.get("state") or None
        if state is not None and state not in STATES:
            problems.append(f"state must be one of {', '.join(STATES)}")
            state = None
        jobs = JobFilter(
            state=state,
            queue=q.get("queue") or None,
            task_name=q.get("task") or None,
            worker_id=q.get("worker") or None,
            since=times["since"],
            until=times["until"],
            args=args,
        )
        before = _int(q.get("before"))
        page = await pages.job_page(self.parts, jobs, before)
        return self.render(
            request,
            "jobs.html",
            page=page,
            q=q,
            states=STATES,
            problems=problems,
            hide=self.parts.hide_args,
        )

    async def job(self, request: Request) -> Response:
        job_id = _int(request.path_params["job_id"])
        row = None
        if job_id is not None:
            with self.parts.database.errors():
                row = await self.parts.store.browse.job(await self.parts.database.pool(), job_id)
        if row is None:
            return self.render(request, "missing.html", status=404, job_id=job_id)
        with self.parts.database.errors():
            attempts = await self.parts.store.reads.attempts(
                await self.parts.database.pool(), row["id"]
            )
        hidden = self.parts.hide_args(row["task_name"])
        args = json.loads(row["args"])
        detail = json.loads(row["error_detail"]) if row["error_detail"] is not None else None
        state = pages.display_state(row)
        return self.render(
            request,
            "job.html",
            job=row,
            state=state,
            hidden=hidden,
            fields=[] if hidden else pages.arg_fields(self.parts, row["task_name"], args),
            result=None
            if hidden or row["result"] is None
            else json.dumps(json.loads(row["result"]), indent=2, ensure_ascii=False),
            detail=None if hidden else pages.detail_text(detail),
            attempts=attempts,
            tracebacks=[None if hidden else pages.detail_text(a.error.detail) for a in attempts],
            contract=await pages.contract_check(self.parts, row),
            can_cancel=state in ("queued", "scheduled", "retrying", "running")
            and self.allowed(request, "cancel", row),
            can_retry=state == "dead" and self.allowed(request, "retry", row),
        )

    async def dead(self, request: Request) -> Response:
        q = request.query_params
        task, reason = q.get("task") or None, q.get("reason") or None
        data = await pages.dead_letters(self.parts, task, reason, _int(q.get("before")))
        return self.render(
            request,
            "dead.html",
            data=data,
            sample=pages.SAMPLE,
            task=task,
            reason=reason,
            hide=self.parts.hide_args,
            can_replay=self.allowed(request, "replay", None),
            can_purge=self.allowed(request, "purge", None),
        )

    async def queues(self, request: Request) -> Response:
        return self.render(
            request,
            "queues.html",
            queues=await self.parts.configured_queues(),
            can_pause=self.allowed(request, "pause", None),
            can_resume=self.allowed(request, "resume", None),
            can_set=self.allowed(request, "set", None),
        )

    async def workers(self, request: Request) -> Response:
        return self.render(request, "workers.html", lines=await pages.workers(self.parts))

    async def periodic(self, request: Request) -> Response:
        return self.render(request, "periodic.html", lines=await pages.periodic(self.parts))

    async def contracts(self, request: Request) -> Response:
        return self.render(
            request, "contracts.html", tasks=await pages.contracts(self.parts), sample=pages.SAMPLE
        )

    async def events(self, request: Request) -> Response:
        if not self.live.available:
            return Response(status_code=204)  # the page polls instead
        return StreamingResponse(
            self.live.events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # -- actions ---------------------------------------------------------------------

    async def job_action(self, request: Request) -> Response:
        action = request.path_params["action"]
        form = await self.form(request)
        if form is None:
            return self.refused(request, "the form's CSRF token is missing or wrong")
        job_id = _int(request.path_params["job_id"])
        row = None
        if job_id is not None:
            with self.parts.database.errors():
                row = await self.parts.store.browse.job(await self.parts.database.pool(), job_id)
        if row is None or job_id is None:
            return self.render(request, "missing.html", status=404, job_id=job_id)
        if action not in ("cancel", "retry") or not self.allowed(request, action, row):
            return self.refused(request, f"{action} is not allowed here")
        if action == "cancel":
            await self.parts.cancel(job_id)
        else:
            await self.parts.dead_letter.replay([job_id])
        return self.back(request, f"/jobs/{job_id}")

    async def dead_action(self, request: Request) -> Response:
        action = request.path_params["action"]
        form = await self.form(request)
        if form is None:
            return self.refused(request, "the form's CSRF token is missing or wrong")
        if action not in ("replay", "purge"):
            return self.refused(request, f"{action} is not an action on dead letters")
        task = (form.get("task") or [""])[0] or None
        reason = (form.get("reason") or [""])[0] or None
        if (form.get("scope") or [""])[0] == "all":
            if not self.allowed(request, action, None):
                return self.refused(request, f"{action} is not allowed here")
            if (form.get("confirmed") or [""])[0] != "yes":
                with self.parts.database.errors():
                    count = await self.parts.store.browse.dead_count(
                        await self.parts.database.pool(),
                        task_name=task,
                        reason=reason,
                        cap=pages.DEAD_COUNT_CAP + 1,
                    )
                return self.render(
                    request,
                    "confirm.html",
                    action=action,
                    task=task,
                    reason=reason,
                    count=min(count, pages.DEAD_COUNT_CAP),
                    capped=count > pages.DEAD_COUNT_CAP,
                )
            done = await pages.bulk_dead(self.parts, action, task, reason)
            return self.back(request, "/dead", task=task, reason=reason, done=f"{action}:{done}")
        ids = [i for i in (_int(v) for v in form.get("id", [])) if i is not None]
        pool = await self.parts.database.pool()
        chosen = []
        for job_id in ids:
            with self.parts.database.errors():
                row = await self.parts.store.browse.job(pool, job_id)
            if row is None or row["state"] != "dead":
                continue
            if not self.allowed(request, action, row):
                return self.refused(request, f"{action} of job {job_id} is not allowed here")
            chosen.append(job_id)
        if action == "replay":
            done = len(await self.parts.dead_letter.replay(chosen)) if chosen else 0
        else:
            done = await self.parts.dead_letter.purge(chosen) if chosen else 0
        return self.back(request, "/dead", task=task, reason=reason, done=f"{action}:{done}")

    async def queue_action(self, request: Request) -> Response:
        action = request.path_params["action"]
        form = await self.form(request)
        if form is None:
            return self.refused(request, "the form's CSRF token is missing or wrong")
        if action not in ("pause", "resume", "set") or not self.allowed(request, action, None):
            return self.refused(request, f"{action} is not allowed here")
        queue = (form.get("queue") or [""])[0].strip()
        try:
            if action == "set":  # the row's limits form: an empty field removes that limit
                concurrency = (form.get("concurrency") or [""])[0].strip()
                if concurrency and not concurrency.isdigit():
                    return self.refused(
                        request,
                        f"concurrency {concurrency!r} is not a whole number (leave it empty "
                        "for no limit)",
                    )
                rate_limit = (form.get("rate_limit") or [""])[0].strip()
                await self.parts.configure_queue(
                    queue,
                    concurrency=int(concurrency) if concurrency else None,
                    rate_limit=rate_limit or None,
                )
            else:
                await self.parts.configure_queue(queue, paused=action == "pause")
        except SoniqError as exc:
            return self.refused(request, str(exc))
        return self.back(request, "/queues")

    def asgi(self) -> Starlette:
        static = resources.files("soniq.console").joinpath("static")
        return Starlette(
            routes=[
                Route("/", self.overview),
                Route("/jobs", self.jobs),
                Route("/jobs/{job_id}", self.job),
                Route("/jobs/{job_id}/{action}", self.job_action, methods=["POST"]),
                Route("/dead", self.dead),
                Route("/dead/{action}", self.dead_action, methods=["POST"]),
                Route("/queues", self.queues),
                Route("/queues/{action}", self.queue_action, methods=["POST"]),
                Route("/workers", self.workers),
                Route("/periodic", self.periodic),
                Route("/contracts", self.contracts),
                Route("/events", self.events),
                Mount("/static", StaticFiles(directory=str(static)), name="static"),
            ]
        )


def _int(text: str | None) -> int | None:
    """A job id or cursor from a URL or form; None for anything else."""
    if text is None or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if value < 2**63 else None


class BasicAuth:
    """ASGI middleware: HTTP basic auth against one ``user:password``."""

    def __init__(self, app: ASGIApp, credentials: str) -> None:
        self.app = app
        self.expected = b"Basic " + base64.b64encode(credentials.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            sent = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(sent, self.expected):
                response = Response(
                    "authentication required",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="soniq console"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
