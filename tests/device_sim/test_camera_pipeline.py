"""The camera's pipeline (issue 17): bounded queues drop visibly, the serial runner keeps the former loop's order,
the threaded runner never stalls silently, and the camera reports per-stage figures on the real-time clock."""
from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from device_sim.pipeline.core import BoundedQueue, Element, SerialRunner, ThreadedRunner
from tests.device_sim.test_camera import SMALL, world  # noqa: F401  (the synthetic walk's fixture)


def test_queue_policies_count_what_they_drop():
    q = BoundedQueue("vi", 2, "drop_newest")
    assert [q.put(i) for i in range(4)] == [True, True, False, False]
    assert (q.get(), q.get(), q.dropped, q.pushed) == (0, 1, 2, 2)
    q = BoundedQueue("ai", 1, "drop_oldest")
    for i in range(5):
        assert q.put(i)
    assert q.get() == 4 and q.dropped == 4 and q.max_depth == 1
    with pytest.raises(ValueError):
        BoundedQueue("x", 0, "block")
    with pytest.raises(ValueError):
        BoundedQueue("x", 1, "leaky")


def test_blocking_queue_waits_for_the_consumer_and_counts_the_wait():
    q = BoundedQueue("ring", 1, "block")
    q.put("a")
    t = threading.Timer(0.2, q.get)
    t.start()
    t0 = time.perf_counter()
    assert q.put("b")                       # waits until the consumer took "a"
    assert time.perf_counter() - t0 >= 0.15 and q.blocked_s >= 0.15 and q.dropped == 0
    assert q.get() == "b"


class _Log(Element):
    def __init__(self, name, log, fanout=()):
        super().__init__(name)
        self.log, self.fanout = log, list(fanout)

    def handle(self, item):
        self.log.append((self.name, item))
        for el in self.fanout:
            self.push(el, item)


def test_serial_runner_walks_depth_first_in_push_order():
    """A frame meets the main-stream chain (encode -> ring) before the substream branch, as the serial loop did."""
    log = []
    ring = _Log("ring", log)
    enc = _Log("enc", log, [ring])
    ai = _Log("ai", log)
    isp = _Log("isp", log, [enc, ai])
    runner = SerialRunner([isp, enc, ai, ring])
    runner.push(isp, 1)
    runner.push(isp, 2)
    assert [n for n, _ in log] == ["isp", "enc", "ring", "ai"] * 2
    assert isp.handled == 2 and ring.handled == 2


class _Slow(Element):
    capacity, policy = 1, "drop_oldest"

    def __init__(self):
        super().__init__("slow")
        self.seen = []

    def handle(self, item):
        time.sleep(0.01)
        self.seen.append(item)


def test_threaded_runner_drops_under_load_instead_of_stalling():
    slow = _Slow()
    runner = ThreadedRunner([slow], time.monotonic)
    runner.start([slow])
    t0 = time.perf_counter()
    for i in range(200):
        runner.push(slow, i)
    assert time.perf_counter() - t0 < 0.5          # the producer never waited on the slow consumer
    runner.stop([slow])
    assert slow.seen[-1] == 199                     # the freshest buffer is always processed
    assert len(slow.seen) + slow.inbox.dropped == 200 and slow.inbox.dropped > 100
    assert slow.stats()["queue"]["dropped"] == slow.inbox.dropped


def test_a_failing_stage_stops_the_camera_with_its_error():
    class Boom(Element):
        capacity, policy = 4, "block"

        def handle(self, item):
            raise RuntimeError(f"stage failed on {item}")
    b = Boom("boom")
    runner = ThreadedRunner([b], time.monotonic)
    runner.start([b])
    for i in range(10):                             # a blocking queue behind a failed stage still drains
        runner.push(b, i)
    runner.stop([b])
    assert len(runner.errors) == 1 and "stage failed on 0" in str(runner.errors[0][1])


@pytest.mark.slow
def test_threaded_camera_on_the_real_clock_reports_every_stage(world, tmp_path):
    from device_sim.camera import run_scenario
    root, bundles, scenario = world
    seen = []
    rep = run_scenario(bundles, {**scenario, "duration_s": 3.5}, "rv1106", tmp_path, data_root=root,
                       settings=replace(SMALL, clock="real"), on_event=seen.append)
    pipe = rep["pipeline"]
    assert rep["config"]["pipeline"] == pipe["runner"] == "threaded"
    assert seen == rep["events"] and any(e["event"] == "person" for e in rep["events"])
    assert {"sensor", "isp", "encode_main", "encode_sub", "ai", "event_router", "uplink", "ring_buffer",
            "audio", "encode_jpeg"} <= set(pipe["stages"])
    assert set(pipe["drops"]) == set(pipe["stages"])
    assert pipe["stages"]["isp"]["handled"] + pipe["drops"]["isp"] + pipe["drops"]["sensor"] == 70
    assert pipe["stages"]["isp"]["cpu_s"] > 0 and pipe["stages"]["audio"]["cpu_s"] > 0
    assert pipe["queue_depth"]["isp"] and pipe["queue_depth"]["encode_main"]
    lat = rep["latency_ms"]
    for hop in ("capture_to_isp", "capture_to_encode", "capture_to_ring", "capture_to_ai_result",
                "capture_to_event", "capture_to_notify"):
        assert lat[hop]["n"] > 0, hop
    assert lat["capture_to_ring"]["p50"] >= lat["capture_to_encode"]["p50"] >= lat["capture_to_isp"]["p50"] > 0
    assert lat["capture_to_notify"]["p50"] >= lat["capture_to_event"]["p50"]
    assert 0 < rep["real_time_factor"] <= 1.0
    html = (tmp_path / "report.html").read_text()
    assert "pipeline stages (threaded runner)" in html and "queue depth over time" in html


def test_serial_pipeline_on_the_real_clock_is_selectable(world, tmp_path):
    from device_sim.camera import CameraSettings, run_scenario
    root, bundles, scenario = world
    rep = run_scenario(bundles[:1], {**scenario, "duration_s": 1.0, "actors": []}, "rv1106", tmp_path,
                       settings=replace(SMALL, clock="real", pipeline="serial"), data_root=root, write=False)
    assert rep["config"]["pipeline"] == rep["pipeline"]["runner"] == "serial"
    assert sum(rep["pipeline"]["drops"].values()) == 0 and rep["main_stream_fps"] == pytest.approx(20.0)
    with pytest.raises(ValueError, match="pipeline"):
        CameraSettings(pipeline="gstreamer")
