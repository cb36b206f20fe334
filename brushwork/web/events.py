"""A job's listeners: each watching page's asyncio queue, fed from the worker thread.

The worker thread never touches an event loop directly: it hands each event to the loop that
owns the listener's queue (`call_soon_threadsafe`), so a page that went away costs nothing
but its own entry, dropped at the next event.
"""

from __future__ import annotations

import asyncio

from .records import Job

ENDS_STREAM = ("closing", "deleted")  # events after which a job's event stream ends


def subscribe(job: Job, loop: asyncio.AbstractEventLoop) -> asyncio.Queue:
    """A new queue of (event, data) for `job`, filled on `loop` (called with the queue's lock held)."""
    events: asyncio.Queue = asyncio.Queue()
    job.listeners.append((loop, events))
    return events


def unsubscribe(job: Job, events: asyncio.Queue) -> None:
    job.listeners = [(loop, q) for loop, q in job.listeners if q is not events]


def publish(job: Job, event: str, data: dict) -> None:
    """Send one event to everyone following `job`, from any thread."""
    for loop, events in list(job.listeners):
        try:
            loop.call_soon_threadsafe(events.put_nowait, (event, data))
        except RuntimeError:  # that listener's event loop is gone
            unsubscribe(job, events)
