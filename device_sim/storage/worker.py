"""A queue served by one daemon thread: the lifecycle the notifier and the uploader share (start, stop, wait)."""
from __future__ import annotations

import collections
import threading


class QueueWorker:
    """``_q`` guarded by ``_cv``; subclasses implement ``_run`` and call :meth:`_next` to block for work."""

    thread_name = "worker"

    def __init__(self) -> None:
        self._q: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
