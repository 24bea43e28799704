"""Parked calls: waiting while a pause holds the run, asking again with a growing back-off,
and cancelling the wait (``cancel_paused_runs``, a tool's ``cancel_event``, the asyncio task)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from agentledger.instrumentation._intent_client import CollectorError
from agentledger.instrumentation.governance.call import _Call

log = logging.getLogger("agentledger.instrumentation.governance")  # one logger, as before the split


class _Waiter:
    """One parked call; ``cancel`` wakes it (from any thread) and makes it raise RunCancelled."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.cancelled = False
        self.loop = loop
        self.thread_event = threading.Event()
        self.async_event: asyncio.Event | None = asyncio.Event() if loop is not None else None

    def cancel(self) -> None:
        self.cancelled = True
        self.thread_event.set()
        if self.loop is not None and self.async_event is not None:
            try:
                self.loop.call_soon_threadsafe(self.async_event.set)
            except RuntimeError:  # loop closed: the task is gone anyway
                pass


_waiters: set[_Waiter] = set()
_waiters_lock = threading.Lock()


def cancel_paused_runs() -> int:
    """Cancel every call parked at a governed tool in this process; each raises RunCancelled.
    Returns how many were waiting."""
    with _waiters_lock:
        waiting = list(_waiters)
    for waiter in waiting:
        waiter.cancel()
    return len(waiting)


def _park_sync(call: _Call, ack: dict[str, Any]) -> None:
    """Wait until the collector answers proceed; raise RunPaused/RunCancelled otherwise."""
    started = time.monotonic()
    deadline = started + call.max_pause_s
    backoff = call.config.initial_backoff_s
    waiter = _Waiter()
    with _waiters_lock:
        _waiters.add(waiter)
    try:
        last: dict[str, Any] | None = ack
        while True:
            wait = call.next_wait(backoff, last, deadline)
            if wait <= 0:
                raise call.gave_up(time.monotonic() - started, cancelled=False)
            end = time.monotonic() + wait
            step = 0.1 if call.has_user_cancel() else wait  # a user's Event cannot wake us: poll it
            while not waiter.cancelled and not call.user_cancelled():
                remaining = end - time.monotonic()
                if remaining <= 0:
                    break
                waiter.thread_event.wait(min(remaining, step))
            if waiter.cancelled or call.user_cancelled():
                raise call.gave_up(time.monotonic() - started, cancelled=True)
            call.attempt += 1
            try:
                last = call.ask()
            except CollectorError as exc:  # the pause stands until the collector says otherwise
                log.warning("re-asking for paused tool %r failed: %s", call.spec.name, exc)
                last = None
            if last is not None and last.get("decision") == "proceed":
                call.paused_s = time.monotonic() - started
                return
            if last is not None:
                call.control_id = last.get("control_id") or call.control_id
            backoff = min(backoff * 2, call.config.max_backoff_s)
    finally:
        with _waiters_lock:
            _waiters.discard(waiter)


async def _ask_async(call: _Call) -> dict[str, Any]:
    """One ask from a coroutine (on a worker thread, which carries the context: principal, span).

    Cancelled while the ask is on the wire, it lets the ask land first (bounded by the
    timeout), so that an intent the collector stored gets its ``not_run`` outcome.
    """
    task = asyncio.ensure_future(asyncio.to_thread(call.ask))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        try:
            await asyncio.wait_for(task, call.timeout_s + 1)
        except (
            Exception,
            asyncio.CancelledError,
        ) as exc:  # only its effect (recorded or not) matters now
            log.debug("ask of cancelled call %s ended with %r", call.intent_id, exc)
        raise


async def _park_async(call: _Call, ack: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    deadline = started + call.max_pause_s
    backoff = call.config.initial_backoff_s
    waiter = _Waiter(loop)
    with _waiters_lock:
        _waiters.add(waiter)
    try:
        last: dict[str, Any] | None = ack
        while True:
            wait = call.next_wait(backoff, last, deadline)
            if wait <= 0:
                raise call.gave_up(time.monotonic() - started, cancelled=False)
            end = time.monotonic() + wait
            step = 0.1 if call.has_user_cancel() else wait
            assert waiter.async_event is not None
            while not waiter.cancelled and not call.user_cancelled():
                remaining = end - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(waiter.async_event.wait(), min(remaining, step))
                except asyncio.TimeoutError:
                    pass
            if waiter.cancelled or call.user_cancelled():
                raise call.gave_up(time.monotonic() - started, cancelled=True)
            call.attempt += 1
            try:
                last = await _ask_async(call)
            except CollectorError as exc:
                log.warning("re-asking for paused tool %r failed: %s", call.spec.name, exc)
                last = None
            if last is not None and last.get("decision") == "proceed":
                call.paused_s = time.monotonic() - started
                return
            if last is not None:
                call.control_id = last.get("control_id") or call.control_id
            backoff = min(backoff * 2, call.config.max_backoff_s)
    except asyncio.CancelledError:
        call.paused_s = time.monotonic() - started
        raise
    finally:
        with _waiters_lock:
            _waiters.discard(waiter)
