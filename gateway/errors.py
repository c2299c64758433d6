"""The one exception the gateway's request path raises to answer a client with an error."""

from __future__ import annotations


class RequestRejected(Exception):
    """The gateway answers this request itself with an error: `status` (400 bad request, 401/403 key,
    404 model, 413 body, 429 limits, 502/503/504 no engine could serve it), and `code` and
    `err_type` for the OpenAI error JSON."""

    def __init__(self, status: int, message: str, code: str, err_type: str = "invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.code = code
        self.err_type = err_type
