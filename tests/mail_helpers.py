"""Reading the real SMTP server's inbox (MailDev's REST API) in tests."""

from __future__ import annotations

import time

import httpx


def messages_to(settings, recipient: str) -> list[dict]:
    messages = httpx.get(f"{settings.smtp.inbox_url}/email", timeout=10).json()
    return [m for m in messages if recipient in {to["address"] for to in m["to"]}]


def inbox_of(settings, recipient: str, expected: int = 1, wait_seconds: float = 20) -> list[dict]:
    """The inbox's messages to ``recipient``, once there are ``expected`` of them (or the wait is over)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        mine = messages_to(settings, recipient)
        if len(mine) >= expected or time.monotonic() > deadline:
            return mine
        time.sleep(0.5)
