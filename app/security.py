"""API keys, owners and the rule that an API without keys serves only this machine."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass

ANONYMOUS_OWNER = "anonymous"
ADMIN_OWNER = "admin"
# Prometheus's owner: /metrics counts every owner's jobs, so only it and those who see all jobs read it.
METRICS_OWNER = "metrics"
# Workers on other hosts: they upload their attempts' files and fetch the ones they resume from.
WORKER_OWNER = "worker"
MIN_KEY_CHARS = 16
OWNER_PATTERN = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
KEY_PATTERN = re.compile(r"[\x21-\x7e]+")
GENERATE_KEY_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


@dataclass(frozen=True)
class Principal:
    """Who is calling: jobs belong to their owner; admin (and anonymous mode) see all."""

    owner: str
    sees_all: bool

    @property
    def reads_metrics(self) -> bool:
        return self.sees_all or self.owner == METRICS_OWNER

    @property
    def is_worker(self) -> bool:
        """Whether it may upload and fetch attempts' files: the worker key, or this machine without keys."""
        return self.owner == WORKER_OWNER or self == ANONYMOUS


ANONYMOUS = Principal(owner=ANONYMOUS_OWNER, sees_all=True)


def parse_api_keys(text: str) -> dict[str, str]:
    """'owner:key' pairs separated by commas or newlines → {key: owner}. Raises ValueError."""
    keys: dict[str, str] = {}
    for raw in re.split(r"[,\n]", text):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        owner, sep, key = entry.partition(":")
        owner, key = owner.strip(), key.strip()
        if not sep or not OWNER_PATTERN.fullmatch(owner):
            raise ValueError(
                f"each API key entry must be 'owner:key' with owner matching {OWNER_PATTERN.pattern}"
            )
        if len(key) < MIN_KEY_CHARS or not KEY_PATTERN.fullmatch(key):
            raise ValueError(
                f"the key of owner {owner!r} must be at least {MIN_KEY_CHARS} printable characters; {GENERATE_KEY_HINT}"
            )
        if key in keys:
            raise ValueError(
                f"the key of owner {owner!r} is also given to {keys[key]!r}; keys must be unique"
            )
        keys[key] = owner
    return keys


class Authenticator:
    """Finds the owner of a bearer token, comparing against every key in constant time."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self._keys = [(key.encode(), owner) for key, owner in keys.items()]

    def authenticate(self, authorization: str | None) -> Principal | None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        candidate = token.strip().encode()
        found: str | None = None
        # No early exit: the time taken does not depend on which key (if any) matched.
        for key, owner in self._keys:
            if hmac.compare_digest(candidate, key):
                found = owner
        if found is None:
            return None
        return Principal(owner=found, sees_all=found == ADMIN_OWNER)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    # A dual-stack socket sees an IPv4 peer as ::ffff:a.b.c.d.
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


def is_remote_peer(client: tuple[str, int] | None) -> bool:
    """Whether an ASGI scope's client reached us over the network from another machine.

    Servers give the socket's IP address (with uvicorn, that of X-Forwarded-For when a proxy on
    this machine sent it). A unix socket has none (None), and an in-process client such as
    Starlette's TestClient gives a name, not an address: neither came over a network."""
    return client is not None and _is_remote_host(client[0])


# Parsing the address took ~60 us of every request without keys; the peers are few.
@functools.lru_cache(maxsize=1024)
def _is_remote_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return not is_loopback(host)


def uvicorn_bind_host(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The address uvicorn was told to bind (None for a unix socket or file descriptor)."""
    args = sys.argv if argv is None else argv
    env = environ if environ is not None else {}
    if any(arg in ("--uds", "--fd") or arg.startswith(("--uds=", "--fd=")) for arg in args):
        return None
    host = env.get("UVICORN_HOST", "127.0.0.1")
    for index, arg in enumerate(args):
        if arg == "--host" and index + 1 < len(args):
            host = args[index + 1]
        elif arg.startswith("--host="):
            host = arg.split("=", 1)[1]
    return host
