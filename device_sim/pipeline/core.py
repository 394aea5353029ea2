"""Pipeline core: elements with one job each, joined by bounded queues, and the two ways to run them.

The model is a SoC media SDK (Rockchip MPI: VI -> VPSS -> VENC channels bound with fixed buffer pools) or GStreamer
(elements linked through ``queue`` elements with ``max-size-buffers`` and ``leaky=upstream|downstream``): every
element owns one inbox, a :class:`BoundedQueue` whose policy says what happens when it is full --

- ``drop_newest`` (GStreamer ``leaky=upstream``; a VI channel with no free buffer): the arriving buffer is refused;
- ``drop_oldest`` (``leaky=downstream``): the oldest waiting buffer goes, the consumer always sees the freshest;
- ``block``: the producer waits (encoded data and events are never thrown away); the time it waited is counted.

Every drop and every wait is counted per queue and shown in the report: under load a camera drops frames, visibly,
it does not stall silently. Two runners execute the same elements:

- :class:`SerialRunner` (the simulated clock, or the serial baseline): one thread; a buffer pushed by an element is
  handled after that element returns, depth first in push order, so each frame walks the graph exactly in the order
  the former single loop used and a fixed seed gives the same events.
- :class:`ThreadedRunner` (the real-time clock): one worker thread per element, so the ISP of frame n+1 runs while
  frame n encodes, the AI reads the substream on its own worker and audio runs on its own. PyAV/x265, numba and
  onnxruntime release the GIL while they compute. CPU per element is ``time.thread_time`` of its worker (library
  thread pools -- numba's OpenMP workers, x265's WPP pool -- are not in any element's figure; the process total is).
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from contextlib import contextmanager

POLICIES = ("drop_newest", "drop_oldest", "block")


class _Eos:
    """End of stream: sent once through every inbox when the camera stops (never dropped)."""

    def __repr__(self) -> str:
        return "EOS"


EOS = _Eos()


class BoundedQueue:
    """A FIFO of at most ``capacity`` buffers with a drop policy; depth is sampled at every put."""

    def __init__(self, name: str, capacity: int, policy: str, now=time.monotonic):
        if capacity < 1 or policy not in POLICIES:
            raise ValueError(f"queue {name}: capacity >= 1 and policy in {POLICIES}, got {capacity}, {policy!r}")
        self.name, self.capacity, self.policy, self._now = name, int(capacity), policy, now
        self._q: deque = deque()
        self._cv = threading.Condition()
        self.pushed = 0
        self.dropped = 0
        self.max_depth = 0
        self.blocked_s = 0.0
        self.depth_samples: list[tuple[float, int]] = []     # (camera clock s, depth after each put and get)

    def put(self, item, force: bool = False) -> bool:
        """Queue ``item``; False when it was refused (``drop_newest`` and full). ``force``: EOS, never refused."""
        with self._cv:
            if len(self._q) >= self.capacity and not force:
                if self.policy == "drop_newest":
                    self.dropped += 1
                    self.depth_samples.append((self._now(), len(self._q)))
                    return False
                if self.policy == "drop_oldest":
                    self._q.popleft()
                    self.dropped += 1
                else:
                    w0 = time.perf_counter()
                    while len(self._q) >= self.capacity:
                        self._cv.wait()
                    self.blocked_s += time.perf_counter() - w0
            self._q.append(item)
            self.pushed += 1
            self.max_depth = max(self.max_depth, len(self._q))
            self.depth_samples.append((self._now(), len(self._q)))
            self._cv.notify_all()
            return True

    def get(self):
        with self._cv:
            while not self._q:
                self._cv.wait()
            item = self._q.popleft()
            self.depth_samples.append((self._now(), len(self._q)))
            self._cv.notify_all()
            return item

    def __len__(self) -> int:
        return len(self._q)

    def summary(self) -> dict:
        depths = [d for _, d in self.depth_samples]
        return {"capacity": self.capacity, "policy": self.policy, "pushed": self.pushed, "dropped": self.dropped,
                "max_depth": self.max_depth, "mean_depth": round(sum(depths) / len(depths), 3) if depths else 0.0,
                "producer_blocked_s": round(self.blocked_s, 4)}


class Element:
    """One job of the camera. Subclasses implement ``handle(buffer)`` and may ``push`` to other elements.

    ``capacity`` / ``policy``: its inbox. ``finish()`` runs once at end of stream (flush encoders, close files).
    """

    capacity: int = 2
    policy: str = "drop_newest"
    # scheduling priority of its worker under the threaded runner (nice increment, Linux per-thread): a stage that
    # may fall behind without hurting the event path (the main-stream VENC) yields the cores to the ISP and AI
    nice: int = 0

    def __init__(self, name: str):
        self.name = name
        self.runner = None
        self.inbox: BoundedQueue | None = None
        self.handled = 0
        self.cpu_s = 0.0
        self.busy_s = 0.0

    def handle(self, item) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self) -> None:
        pass

    def push(self, consumer: "Element", item) -> bool:
        """Hand ``item`` to ``consumer`` (its inbox under the threaded runner); False when its queue dropped it."""
        return self.runner.push(consumer, item)

    def stats(self) -> dict:
        out = {"handled": self.handled, "cpu_s": round(self.cpu_s, 4), "busy_s": round(self.busy_s, 4)}
        if self.inbox is not None:
            out["queue"] = self.inbox.summary()
        return out


class SerialRunner:
    """All elements on the calling thread; pushes are handled depth first after the pushing element returns."""

    threaded = False

    def __init__(self, elements: list[Element]):
        self.elements = elements
        self._pending: list | None = None
        for el in elements:
            el.runner = self

    @staticmethod
    def cpu_time() -> float:
        return time.process_time()

    def push(self, consumer: Element, item) -> bool:
        if self._pending is None:
            self._run(consumer, consumer.handle, item)
        else:
            self._pending.append((consumer, item))
        return True

    def finish(self, el: Element) -> None:
        self._run(el, lambda _: el.finish(), None, count=False)

    def _run(self, el: Element, fn, item, count: bool = True) -> None:
        outer, self._pending = self._pending, []
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            fn(item)
        finally:
            el.cpu_s += time.process_time() - c0
            el.busy_s += time.perf_counter() - w0
            el.handled += int(count)
            pushes, self._pending = self._pending, outer
        for consumer, it in pushes:
            self._run(consumer, consumer.handle, it)


class ThreadedRunner:
    """One worker thread per element, each blocking on its inbox; ``stop`` drains them in the given order."""

    threaded = True

    def __init__(self, elements: list[Element], now):
        self.elements = elements
        self.errors: list[tuple[str, BaseException]] = []
        self.niced: dict[str, int] = {}
        self._threads: dict[str, threading.Thread] = {}
        for el in elements:
            el.runner = self
            el.inbox = BoundedQueue(el.name, el.capacity, el.policy, now)

    @staticmethod
    def cpu_time() -> float:
        return time.thread_time()

    def push(self, consumer: Element, item) -> bool:
        return consumer.inbox.put(item)

    def start(self, workers: list[Element]) -> None:
        for el in workers:
            th = threading.Thread(target=self._loop, args=(el,), name=f"cam-{el.name}", daemon=True)
            self._threads[el.name] = th
            th.start()

    def _loop(self, el: Element) -> None:
        if el.nice:
            self.niced[el.name] = renice([threading.get_native_id()], el.nice)
        while True:
            item = el.inbox.get()
            if item is EOS:
                break
            if self.errors:
                continue                     # a stage failed: drain so no producer blocks, the camera re-raises
            self.call(el, el.handle, item)
        self.call(el, lambda _: el.finish(), None, count=False)

    def call(self, el: Element, fn, item, count: bool = True) -> None:
        """Run ``fn(item)`` as ``el`` on this thread, charging its thread CPU time; errors are kept, not lost."""
        c0, w0 = time.thread_time(), time.perf_counter()
        try:
            fn(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the camera after every thread stopped
            self.errors.append((el.name, exc))
        finally:
            el.cpu_s += time.thread_time() - c0
            el.busy_s += time.perf_counter() - w0
            el.handled += int(count)

    def stop(self, order: list[Element]) -> None:
        """End of stream, upstream first: each element drains its inbox, finishes, then the next one is told."""
        for el in order:
            el.inbox.put(EOS, force=True)
            th = self._threads.get(el.name)
            if th is not None:
                th.join()


def renice(tids, increment: int) -> int:
    """Lower the priority of these threads (Linux: setpriority on a thread id); returns how many were changed."""
    done = 0
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), os.getpriority(os.PRIO_PROCESS, int(tid)) + increment)
            done += 1
        except (OSError, AttributeError, ValueError):
            pass
    return done


def threads_cpu_s(tids) -> float:
    """CPU seconds (user + system) of these threads so far (Linux /proc/self/task/<tid>/stat), 0 for gone ones."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for tid in tids:
        try:
            with open(f"/proc/self/task/{int(tid)}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])          # utime, stime (fields 14 and 15 of stat(5))
        except (OSError, ValueError, IndexError):
            pass
    return total / tick


def thread_ids() -> set[int]:
    """Native ids of this process's threads (Linux /proc/self/task), empty elsewhere."""
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()


@contextmanager
def charge(cpu_s: dict, key: str, cpu_time, lock: threading.Lock):
    """Add the CPU time of the block (``cpu_time``: process or thread clock) to ``cpu_s[key]``."""
    c0 = cpu_time()
    try:
        yield
    finally:
        dt = cpu_time() - c0
        with lock:
            cpu_s[key] += dt
