"""Logging in to ``/inspect`` with the API key, and out (the rules: ``gateway.inspect.access``)."""

from __future__ import annotations

from aiohttp import web

from gateway.inspect import access, pages


async def login_form(request: web.Request) -> web.Response:
    target = access.local_next(request.query.get("next"))
    return pages.render(request, "login.html", page="login", next=target)


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    given = str(form.get("api_key", ""))
    target = access.local_next(str(form.get("next", "")))
    wait = access.login_wait(request)
    if wait:
        problem = f"Too many failed attempts: try again in {wait} s."
        response = pages.render(request, "login.html", page="login", next=target, problem=problem)
        response.set_status(429)
        response.headers["Retry-After"] = str(wait)
        return response
    if not access.api_key_matches(request, given):
        access.login_failed(request)
        problem = "That is not the API key."
        response = pages.render(request, "login.html", page="login", next=target, problem=problem)
        response.set_status(401)
        return response
    redirect = web.Response(status=303, headers={"Location": target})
    await access.log_in(request, redirect)
    return redirect


async def logout(request: web.Request) -> web.Response:
    redirect = web.Response(status=303, headers={"Location": "/inspect/login"})
    await access.log_out(request, redirect)
    return redirect
