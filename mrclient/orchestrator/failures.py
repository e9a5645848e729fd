"""What a failed attempt to reach the orchestrator says, in one line, and whether waiting on can help.

websocket-client reports a failed handshake with the whole HTTP answer, headers
and body (a web server's 404 page is kilobytes of HTML), a name that does not
resolve as a ``gaierror`` and a closed port as ``ConnectionRefusedError``.
``attempt_failure`` turns each into one line a person reads at a glance, and
gives a verdict:

* ``NOT_THE_ORCHESTRATOR``: something answered, and not as a WebSocket
  server: an HTTP status that is not an upgrade (404, 401, a 200 with a web
  page...) or an answer that is not HTTP at all. The address is someone
  else's, and asking again will not change that. 5xx, 408 and 429 are the
  exception: a proxy in front of an orchestrator says so while it restarts.
* ``UNKNOWN_HOST``: the host name does not resolve. A typo, usually; but a
  container's name stops resolving while the container restarts (Docker
  Compose, a headless Kubernetes service), so the connection's settings say
  whether it counts as wrong (the command line: yes; the library: no).
* ``RETRY``: what an orchestrator that is restarting, or not started yet,
  gives (a refused connection, a timeout, a reset, a closed handshake,
  a 503), and anything else.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from enum import Enum
from http import HTTPStatus

import websocket

from .._support.addresses import host_port

__all__ = ["AttemptFailure", "Verdict", "attempt_failure"]

#: HTTP statuses a proxy gives while the service behind it is away: worth waiting for.
_TRANSIENT_STATUSES = frozenset({408, 425, 429})
_MAX_QUOTE = 60


#: How websocket-client 1.9 says the answer is not HTTP (a banner, bytes that are not UTF-8).
_NOT_HTTP_MESSAGES = ("Invalid status line", "Invalid header line")


class UnreadableAnswer(websocket.WebSocketException):
    """The answer to the handshake is not HTTP (websocket-client before 1.9 raises IndexError or ValueError there)."""


class Verdict(Enum):
    """Whether a failed attempt says the address is wrong."""

    RETRY = "retry"
    NOT_THE_ORCHESTRATOR = "not the orchestrator"
    UNKNOWN_HOST = "unknown host"


@dataclass(frozen=True)
class AttemptFailure:
    """One failed attempt: ``reason`` (one line), ``summary`` (the same, naming the URL) and the verdict."""

    reason: str
    summary: str
    verdict: Verdict = Verdict.RETRY


def attempt_failure(
    error: BaseException, url: str, host: str, port: int | str, open_timeout: float | None = None
) -> AttemptFailure:
    """What ``error``, raised by an attempt to open ``url`` (at ``host``:``port``), means, in one line.

    ``open_timeout`` is how long the attempt had, said when it timed out.
    """
    where = host_port(host, port)
    if isinstance(error, websocket.WebSocketBadStatusException):
        status = f"HTTP {error.status_code}" + (f" {phrase}" if (phrase := _status_phrase(error)) else "")
        if error.status_code >= 500 or error.status_code in _TRANSIENT_STATUSES:
            return AttemptFailure(f"{status} (not ready?)", f"{status} from {url} (not ready?)")
        return AttemptFailure(
            f"{status}, not a WebSocket: is this the orchestrator's port?",
            f"{status} from {url}: is this the orchestrator's port?",
            Verdict.NOT_THE_ORCHESTRATOR,
        )
    if isinstance(error, websocket.WebSocketAddressException):
        cause = error.args[0] if error.args else None
        if isinstance(cause, socket.gaierror) and cause.errno == socket.EAI_NONAME:
            reason = f"the host name {host!r} does not resolve"
            return AttemptFailure(reason, f"{reason} ({url}): is the host right?", Verdict.UNKNOWN_HOST)
        detail = cause.strerror if isinstance(cause, OSError) and cause.strerror else _first_line(cause or error)
        reason = f"could not resolve {host!r} ({detail})"
        return AttemptFailure(reason, f"{reason}, for {url}")
    if isinstance(error, ConnectionRefusedError):
        reason = f"connection refused: nothing listens at {where}"
        return AttemptFailure(reason, f"{reason} ({url})")
    if isinstance(error, (socket.timeout, TimeoutError, websocket.WebSocketTimeoutException)):
        reason = f"no answer from {where}" + ("" if open_timeout is None else f" within {open_timeout:g}s")
        return AttemptFailure(reason, f"{reason} ({url})")
    if isinstance(error, websocket.WebSocketConnectionClosedException):
        reason = f"{where} closed the connection during the WebSocket handshake"
        return AttemptFailure(reason, f"{reason} ({url})")
    if isinstance(error, UnreadableAnswer):
        return AttemptFailure(
            "not an HTTP answer: is this the orchestrator's port?",
            f"{url} did not answer HTTP: is this the orchestrator's port?",
            Verdict.NOT_THE_ORCHESTRATOR,
        )
    if type(error) is websocket.WebSocketException and str(error).startswith(_NOT_HTTP_MESSAGES):
        answer = str(error).partition(":")[2].strip()
        return AttemptFailure(
            f"not an HTTP answer ({_cut(answer)}): is this the orchestrator's port?",
            f"{url} answered {_cut(answer)}, not HTTP: is this the orchestrator's port?",
            Verdict.NOT_THE_ORCHESTRATOR,
        )
    reason = _first_line(error)
    return AttemptFailure(reason, f"{reason} ({url})")


def _status_phrase(error: websocket.WebSocketBadStatusException) -> str | None:
    """The answer's reason phrase; websocket-client 1.8 does not keep it, so the standard one then."""
    phrase: str | None = getattr(error, "status_message", None)
    if phrase:
        return phrase
    try:
        return HTTPStatus(error.status_code).phrase
    except ValueError:
        return None


def _first_line(error: BaseException) -> str:
    """``Type: message``, its first line only, and not too long."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    name = type(error).__name__
    return f"{name}: {_cut(text, 200)}" if text else name


def _cut(text: str, width: int = _MAX_QUOTE) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
