"""An HTTP client for one node, for the command line.

Every failure a user can cause — a node that is down, a malformed URL, an
error answer — becomes a :class:`ClientError` whose message is one readable
line: the node's JSON error is reduced to its message and code, never shown raw.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from aonode.errors import ClientError

DEFAULT_URL = "http://127.0.0.1:8734"
ANS104 = {"content-type": "application/ans104"}


def check_url(url: str) -> str:
    """``url`` without a trailing slash, or a ClientError saying what is wrong with it."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number or out of range
    except ValueError as exc:
        raise ClientError(f"malformed node URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError(f"malformed node URL {url!r}: expected http://HOST:PORT")
    del port
    return url.rstrip("/")


def error_text(response: httpx.Response) -> str:
    """One line saying why the node refused: its error message and code, not raw JSON."""
    status = response.status_code
    message, code = "", ""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        err = body.get("error", body.get("errors"))
        if isinstance(err, dict):
            message, code = str(err.get("message", "")), str(err.get("code", ""))
        elif isinstance(err, list) and err and isinstance(err[0], dict):
            message = str(err[0].get("message", ""))
        elif isinstance(err, str):
            message = err
    if not message and body is None:
        message = response.text.strip()[:200]
    message = message or response.reason_phrase
    return one_line(f"{message} (HTTP {status}{' ' + code if code else ''})")


def one_line(text: str) -> str:
    """``text`` with its line breaks folded, so an error is always one line."""
    return " | ".join(part.strip() for part in text.strip().splitlines() if part.strip())


class NodeClient:
    """Blocking requests to one node; use as a context manager."""

    def __init__(self, url: str, *, timeout: float = 120) -> None:
        self.url = check_url(url)
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        ok_statuses: tuple[int, ...] = (),
    ) -> httpx.Response:
        """The node's answer; a ClientError for no answer or an error status."""
        try:
            response = self._http.request(
                method, path, params=params, content=content, headers=headers
            )
        except httpx.ConnectError:
            raise ClientError(f"cannot reach a node at {self.url} (is it running?)") from None
        except httpx.TimeoutException:
            raise ClientError(f"the node at {self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ClientError(one_line(f"request to {self.url} failed: {exc}")) from None
        if response.status_code >= 400 and response.status_code not in ok_statuses:
            raise ClientError(error_text(response))
        return response

    def json(self, method: str, path: str, **kw: Any) -> Any:
        """The node's JSON answer (a ClientError if it is not JSON)."""
        response = self.request(method, path, **kw)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ClientError(f"the node at {self.url} answered {path} with no JSON") from None

    def address(self) -> str:
        """The node's scheduler address."""
        return self.request("GET", "/~meta@1.0/info/address").text.strip()

    def schedule(self, raw: bytes) -> Any:
        """Post a signed ANS-104 item to be scheduled: ``{"process","slot",…}``."""
        return self.json("POST", "/~scheduler@1.0/schedule", content=raw, headers=ANS104)

    def store(self, raw: bytes) -> str:
        """Store a signed ANS-104 item by id without scheduling it; its id."""
        answer = self.json("POST", "/~message@1.0/store", content=raw, headers=ANS104)
        return str(answer["id"])

    def message_tags(self, message_id: str) -> dict[str, str] | None:
        """The tags of a message the node holds (lower-cased names), None if it has none."""
        response = self.request("GET", f"/~message@1.0/{message_id}", ok_statuses=(404,))
        if response.status_code == 404:
            return None
        doc = orjson.loads(response.content)
        return {str(t["name"]).lower(): str(t["value"]) for t in doc.get("tags", [])}

    def compute(self, pid: str, slot: int | None) -> Any:
        """``{"process","slot","results"}`` of a slot (None: the current one)."""
        if slot is None:
            return self.json("GET", f"/{pid}~process@1.0/now")
        return self.json("GET", f"/{pid}~process@1.0/compute", params={"slot": slot})

    def dryrun(self, pid: str, raw: bytes) -> Any:
        """A dry run of a signed item against the process's latest state."""
        return self.json("POST", f"/{pid}~process@1.0/compute", content=raw, headers=ANS104)

    def result(self, pid: str, message_id: str) -> Any:
        """The result of a scheduled message, by its id (the legacy CU's ``/result``)."""
        return self.json("GET", f"/result/{message_id}", params={"process-id": pid})
