"""The command line's one answer to failure: a line on stderr and an exit code.

Domain errors (``gateway.errors``) are mapped here, and only here: bad configuration exits 2,
anything else the command's failure code (1; 2 for ``serve``, which could not start).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from gateway import errors


class CommandFailed(Exception):
    """A command could not do what was asked: one line on stderr, exit code ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def say(message: str) -> None:
    """One line for the operator on stderr, as every failure is told."""
    print(f"hookgate: {message}", file=sys.stderr)


def handle_errors(command: Callable[[], int], *, failure: int = 1) -> int:
    """Run ``command``; its exit code, or the one its failure maps to."""
    try:
        return command()
    except CommandFailed as exc:
        say(str(exc))
        return exc.code
    except errors.ConfigError as exc:
        say(exc.detail)
        return 2
    except errors.GatewayError as exc:
        say(exc.detail)
        return failure
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, and let nothing flush into the pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
