"""Jinja2 transforms, run sandboxed in a worker process of their own.

``ImmutableSandboxedEnvironment`` keeps a template from reaching Python's internals or changing
its inputs, but not from asking for a gigabyte (``"x"|center(10**9)``) or looping for minutes.
So templates render in a child process (``python -m gateway.outbox.templates``) whose address
space is capped, under a wall-clock limit, with the output cut off at ``MAX_OUTPUT``: a template
that breaks a limit kills only its worker, which the next render starts again.

The parent checks syntax in process (``check``): parsing and compiling are bounded by the
template's size. One worker serves every render of this process, one at a time.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_TEMPLATE = 16 * 1024
MAX_OUTPUT = 1024 * 1024
TIME_LIMIT = 5.0
START_LIMIT = 30.0
MEMORY_LIMIT = 512 * 1024 * 1024
_FRAME = 4
_READY = b"\0" * _FRAME


class TemplateProblem(Exception):
    """A template that cannot be used, or did not render; the message says why."""


def environment() -> ImmutableSandboxedEnvironment:
    """Missing values are errors rather than empty text, and nothing is HTML-escaped."""
    return ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


_CHECKER = environment()


def check(source: str) -> None:
    """``TemplateProblem`` with the line and the parser's message unless ``source`` parses.

    Only parsed, never compiled, here: Jinja's code generator evaluates constant expressions
    while compiling, so ``"x"|center(10**9)`` would run in this process, outside the worker's
    limits. What only compiling finds (an unknown filter) fails the render, in the worker."""
    if len(source) > MAX_TEMPLATE:
        raise TemplateProblem(f"longer than {MAX_TEMPLATE} characters")
    try:
        _CHECKER.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"line {exc.lineno}: {exc.message}") from None
    except (jinja2.TemplateError, RecursionError, ValueError) as exc:
        raise TemplateProblem(str(exc) or type(exc).__name__) from None


async def render(source: str, context: dict[str, Any]) -> str:
    """The template's text for ``context`` (JSON values), from the worker process. Renders
    queue on one thread of their own, so waiting for the worker holds no shared thread."""
    request = json.dumps({"source": source, "context": context}).encode()
    return await asyncio.get_running_loop().run_in_executor(_THREAD, _WORKER.render, request)


def close() -> None:
    """Stop the worker (it starts again on the next render)."""
    _WORKER.stop()


class _Worker:
    """The child process and the blocking exchange with it; one render at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def render(self, request: bytes) -> str:
        with self._lock:
            process = self._started()
            assert process.stdin is not None
            assert process.stdout is not None
            try:
                process.stdin.write(len(request).to_bytes(_FRAME, "big") + request)
                process.stdin.flush()
                deadline = time.monotonic() + TIME_LIMIT
                size = int.from_bytes(_read(process.stdout, _FRAME, deadline), "big")
                reply = json.loads(_read(process.stdout, size, deadline))
            except TimeoutError:
                self._stop()
                raise TemplateProblem(f"the template ran longer than {TIME_LIMIT:g} s") from None
            except (OSError, EOFError, ValueError):
                self._stop()
                raise TemplateProblem(
                    f"the template's worker stopped (a template may use at most "
                    f"{MEMORY_LIMIT // 2**20} MB)"
                ) from None
        if "error" in reply:
            raise TemplateProblem(str(reply["error"]))
        return str(reply["output"])

    def _started(self) -> subprocess.Popen[bytes]:
        """The running worker, or a new one once it says it is ready (its start-up, slow on a
        busy machine, does not count against the first render's time limit)."""
        if self._process is not None and self._process.poll() is None:
            return self._process
        env = dict(os.environ)
        here = str(Path(__file__).resolve().parents[2])  # where this gateway package lives
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (here, env.get("PYTHONPATH"))))
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.outbox.templates"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self._process = process
        assert process.stdout is not None
        try:
            if _read(process.stdout, _FRAME, time.monotonic() + START_LIMIT) != _READY:
                raise EOFError
        except (TimeoutError, EOFError, OSError):
            self._stop()
            raise TemplateProblem("the template worker did not start") from None
        return process

    def stop(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _read(stream: IO[bytes], size: int, deadline: float) -> bytes:
    """Exactly ``size`` bytes, or ``TimeoutError`` at ``deadline``, or ``EOFError``."""
    fd, chunks, missing = stream.fileno(), [], size
    while missing:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


_WORKER = _Worker()
_THREAD = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="templates")
atexit.register(_WORKER.stop)


# --- the worker process ---------------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def _template(source: str) -> jinja2.Template:
    return _SANDBOX.from_string(source)


_SANDBOX = environment()


def _render_bounded(source: str, context: Any) -> str:
    template = _template(source)
    pieces, size = [], 0
    for piece in template.generate(**context):
        size += len(piece)
        if size > MAX_OUTPUT:
            raise TemplateProblem(f"the template's output is longer than {MAX_OUTPUT} characters")
        pieces.append(piece)
    return "".join(pieces)


def _answer(request: bytes) -> bytes:
    try:
        asked = json.loads(request)
        reply: dict[str, str] = {"output": _render_bounded(asked["source"], asked["context"])}
    except MemoryError:
        reply = {"error": f"the template needed more than {MEMORY_LIMIT // 2**20} MB"}
    except TemplateProblem as exc:
        reply = {"error": str(exc)}
    except jinja2.TemplateSyntaxError as exc:
        reply = {"error": f"line {exc.lineno}: {exc.message}"}
    except Exception as exc:  # noqa: BLE001 - whatever a template raises is its own failure
        reply = {"error": f"{type(exc).__name__}: {exc}"}
    return json.dumps(reply).encode()


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The worker's loop: length-prefixed JSON requests on stdin, replies on stdout, until EOF."""
    stdout.write(_READY)
    stdout.flush()
    while True:
        header = stdin.read(_FRAME)
        if len(header) < _FRAME:
            return
        reply = _answer(stdin.read(int.from_bytes(header, "big")))
        stdout.write(len(reply).to_bytes(_FRAME, "big") + reply)
        stdout.flush()


def _main() -> None:
    """The worker process: its address space capped, then serving its parent."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    _serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    _main()
