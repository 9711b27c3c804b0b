"""One shape for every JSON error: {"error": {"code", "message"}}."""

from __future__ import annotations

from aiohttp import web


class ApiError(Exception):
    """An error a handler reports to the client; becomes a JSON response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
