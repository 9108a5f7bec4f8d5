"""Argon2id password (and booth secret) hashing, and a bounded pool that runs it off the
event loop: one hash takes ~0.1-0.3 s of CPU, which on the loop would stall signaling."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from server.auth.errors import AuthError

T = TypeVar("T")

_hasher = PasswordHasher()
# Verified against when the account does not exist, so "no such user" costs the same
# time as "wrong password" (same parameters, same pool, same queue).
_DUMMY_HASH = _hasher.hash("loket-dummy-password")

MIN_PASSWORD_LENGTH = 10


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, secret) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")


def server_busy() -> AuthError:
    return AuthError(
        "server_busy",
        "too many logins are being checked right now; try again in a moment",
        status=503,
        retry_after=1.0,
    )


class HashingPool:
    """Runs argon2 in `concurrency` dedicated threads (argon2-cffi releases the GIL), so
    the event loop keeps serving sockets. At most `queue` callers wait for a thread;
    the next one is refused at once with a 503 instead of piling up behind them."""

    def __init__(self, concurrency: int, queue: int) -> None:
        self._concurrency = concurrency
        self._queue = queue
        self._slots = asyncio.Semaphore(concurrency)
        self._waiting = 0
        # Own threads, not asyncio's default executor: a burst of logins must not
        # delay other work that uses to_thread (DNS lookups, file I/O).
        self._executor: ThreadPoolExecutor | None = None

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if self._slots.locked() and self._waiting >= self._queue:
            raise server_busy()
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()

    async def _run(self, work: Callable[..., T], *args: str | None) -> T:
        async with self._slot():
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self._concurrency, thread_name_prefix="loket-argon2"
                )
                # Nobody has to remember close(): the threads go with the pool.
                weakref.finalize(self, self._executor.shutdown, wait=False)
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)

    async def verify(self, stored_hash: str | None, secret: str) -> bool:
        """False for a wrong secret or a missing account (`stored_hash` None), at the
        same cost either way."""
        return await self._run(verify_secret, stored_hash, secret)

    async def hash(self, secret: str) -> str:
        return await self._run(hash_secret, secret)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
