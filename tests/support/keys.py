"""API keys of the owners the API tests act as, and the header that sends one."""

from __future__ import annotations

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdef"
ADMIN = "admin-key-0123456789abcdef"
# TRAINQ_API_KEYS for the `keyed` client of tests/app/conftest.py.
KEYED_OWNERS = f"alice:{ALICE},bob:{BOB},admin:{ADMIN}"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
