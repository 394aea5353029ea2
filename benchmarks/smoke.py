"""``make bench-smoke``: every bench on tiny inputs; each headline key present, finite and computed.

"Computed" is shown by a mutated input: each smoke case runs the bench's own code twice, once on the tiny input and
once with one input changed (a noisier sensor, a costlier NPU model, a stuck IV source, a camera serving another's
recordings, a different bundle pair, later relay connects, a probe detector that fires less), and the key must move.
The export / cry benches belong to other work: their module's ``smoke() -> dict`` is called when it exists (each
numeric value must be finite), else the reason for skipping is printed. Budget: under 5 minutes on the 2-core VM.
"""
from __future__ import annotations

import importlib
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

OTHER_BENCHES: tuple[str, ...] = ()   # benches whose smoke lives in the module (a smoke() entry)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check(name: str, base: dict, mutated: dict, keys: list[str]) -> list[str]:
    """Problems with ``keys``: absent, not finite, or unmoved by the mutation."""
    bad = []
    for k in keys:
        a, b = base.get(k), mutated.get(k)
        if not _finite(a) or not _finite(b):
            bad.append(f"{name}.{k}: not a finite number ({a!r}, mutated {b!r})")
        elif a == b:
            bad.append(f"{name}.{k}: unchanged by the mutated input ({a!r})")
    return bad


def _isp(tmp: Path) -> list[str]:
    from benchmarks import bench_isp
    from camlab.sensor.noise import NoiseModel

    def fig(noise) -> dict:
        cal = bench_isp.calibrated_noise_model(isos=(100, 800), size=96, sensor_noise=noise)
        return {"calibrated_shot_1": cal.shot_1}
    bad = check("isp", fig(None), fig(NoiseModel(shot_1=2.0 / 9000.0)), ["calibrated_shot_1"])
    from camlab import settings

    images = settings.data_or_demo("images")   # a clone without ../shared: the demo slice's photos
    q100 = bench_isp.pipeline_quality(1, isos=(100,), images_root=images)["pipeline_psnr_iso100_db"]
    q800 = bench_isp.pipeline_quality(1, isos=(800,), images_root=images)["pipeline_psnr_iso800_db"]
    return bad + check("isp", q100, q800, ["ours", "ours_oracle_noise", "rawpy", "rawpy_best"])


def _device_sim(tmp: Path) -> list[str]:
    from benchmarks import bench_device_sim as b
    from camlab import settings
    from device_sim.camera import CameraSettings, run_scenario

    # a clone without ../shared: the demo scenario, whose stills the demo slice holds
    scenario = b.SCENARIO if settings.has_full_data() else b.REAL_CLOCK_SCENARIO

    def fig(npu_ms: float, tag: str, duration_s: float) -> dict:
        bundles = [b.probe_detector_bundle(tmp / f"det{tag}", npu_ms=npu_ms), b.probe_cry_bundle(tmp / f"cry{tag}")]
        rep = run_scenario(bundles, scenario, "rv1106", tmp / f"run{tag}", settings=CameraSettings(
            main_size=(640, 360), sub_size=(320, 180)), duration_s=duration_s, write=False)
        return {"npu_utilisation": rep["npu"]["utilisation"], "ai_fps_wall": rep["ai"]["runs"] / rep["wall_s"],
                "wall_s": rep["wall_s"]}
    # the costlier NPU model moves the simulated-clock figures; the wall-clock ones need more work to move (the NPU
    # cost is simulated time: two 3 s runs once gave the same wall_s to the millisecond), so the mutated run is longer
    return check("device_sim", fig(3.0, "a", 3.0), fig(9.0, "b", 4.5), ["npu_utilisation", "ai_fps_wall", "wall_s"])


def _ota(tmp: Path) -> list[str]:
    from benchmarks import bench_device_sim as b
    from benchmarks import bench_ota
    a = b.probe_detector_bundle(tmp / "a")
    c = b.probe_detector_bundle(tmp / "c", threshold=0.3)
    os.environ["CAMLAB_OTA_BUNDLES"] = f"{a}:{c}"
    try:
        base = bench_ota.model_update(tmp / "w1")
        os.environ["CAMLAB_OTA_BUNDLES"] = f"{a}:{a}"
        same = bench_ota.model_update(tmp / "w2")
    finally:
        os.environ.pop("CAMLAB_OTA_BUNDLES", None)
    return check("ota", base, same, ["model_update_bytes"])


def _storage(tmp: Path) -> list[str]:
    from benchmarks import bench_storage as bs
    from device_sim.storage.clips import ClipMaker
    from device_sim.storage.crypto import IvLedger, new_user_key
    from device_sim.storage.synth import SyntheticSource

    key = new_user_key()

    def fig(ledger, tag: str) -> dict:
        src = SyntheticSource(64, 64, fps=10, gop=10)
        ring = list(src.packets(0.0, 15.0))
        post = [src.packet(i) for i in range(150, 400)]
        maker = ClipMaker(tmp / tag, key, segment_s=10, pre_roll_s=10, post_roll_s=20, ledger=ledger)
        for k in range(2):
            maker.make_clip({"event_id": f"e{k}", "pts_s": 14.95}, ring, post, src.info)
        return bs.audit_ivs(tmp / tag, key)
    return check("storage", fig(IvLedger(), "ok"), fig(bs._StuckLedger(), "stuck"), ["iv_reuse", "distinct_ivs"])


def _network(tmp: Path) -> list[str]:
    from benchmarks import bench_network as bn
    from device_sim.net.audit import run_audit
    bad = check("network", bn.relay_split([1100.0, 1150.0, 1200.0], 1.0), bn.relay_split([1300.0, 1400.0, 1600.0], 1.0),
                ["relay_setup_after_deadline_p95_ms"])
    c1 = bn.cloud_http_audit(tmp / "c1", 40, n_tenants=3, clips_per_tenant=1, seed=0)
    c2 = bn.cloud_http_audit(tmp / "c2", 80, n_tenants=3, clips_per_tenant=1, seed=1)
    bad += check("network", c1, c2, ["foreign_requests", "foreign_refused", "foreign_write_attempts"])
    clean = run_audit(n_requests=120, n_accounts=6, n_devices=3, seed=5, n_strangers=20)
    order: dict[str, int] = {}

    def swapped(did: str) -> str:
        order.setdefault(did, len(order))
        return did if len(order) < 2 else next(d for d, i in order.items() if i == (order[did] + 1) % len(order))
    mixed = run_audit(n_requests=120, n_accounts=6, n_devices=3, seed=5, n_strangers=20, serve_files_of=swapped)
    return bad + check("network", {"cross_tenant_reads": clean.cross_tenant_reads + 0.0},
                       {"cross_tenant_reads": mixed.cross_tenant_reads + 0.0}, ["cross_tenant_reads"])


def _detector(tmp: Path) -> list[str]:
    """bench_detector's evaluation on two probe bundles (person fires on bright cells above 0.3 vs 0.9)."""
    from benchmarks import bench_detector
    from benchmarks.bench_device_sim import probe_detector_bundle
    from camlab.errors import InputFileError

    # 96 px boxes on 24 images: the people of the split are large (the CCTV frames read at 16:9), and with 32 px
    # boxes on 12 images neither probe matched one at IoU 0.5, so AP50 read 0.0 for both and could not move
    try:
        base = bench_detector.smoke_figures(probe_detector_bundle(tmp / "a", threshold=0.3, box_px=96), n_images=24)
    except InputFileError as e:   # a clone without ../shared has no detector split images
        print(f"skip detector: {e}", flush=True)
        return []
    mutated = bench_detector.smoke_figures(probe_detector_bundle(tmp / "b", threshold=0.9, box_px=96), n_images=24)
    bad = check("detector", base, mutated, ["person_ap50", "person_presence_recall"])
    if base["hog_person_ap50"] != mutated["hog_person_ap50"]:   # the anchor must not depend on our bundle
        bad.append(f"detector.hog_person_ap50: moved with our bundle ({base['hog_person_ap50']!r} vs "
                   f"{mutated['hog_person_ap50']!r})")
    return bad


def _isp_tune(tmp: Path) -> list[str]:
    """bench_isp_tune's tiny study at ISO 3200 vs 800: the held-out PSNR figures must move with the sensor gain."""
    from benchmarks import bench_isp_tune
    from camlab.errors import ConfigError, InputFileError

    try:
        base = bench_isp_tune.smoke_figures(tmp / "a", 3200.0)
    except (InputFileError, ConfigError) as e:   # a clone without ../shared: no quality images or colour chart
        print(f"skip isp_tune: {e}", flush=True)
        return []
    mutated = bench_isp_tune.smoke_figures(tmp / "b", 800.0)
    return check("isp_tune", base, mutated, ["heldout_psnr_db_shipped", "heldout_psnr_db_tuned"]) + [
        f"isp_tune.{k}: not a finite number ({base.get(k)!r})" for k in ("heldout_psnr_gain_db",
                                                                          "cpu_cost_ratio_tuned_vs_shipped")
        if not _finite(base.get(k))]


def _export(tmp: Path) -> list[str]:
    """bench_export's figures of an untrained cry CNN (toolchain-legal 64 x 96 input) at two widths."""
    import torch

    from benchmarks import bench_export
    from camlab.config import to_dict
    from camlab.contract.audio_features import FeatureConfig
    from camlab.models import cry
    from camlab.train.checkpoint import save_checkpoint

    def fig(stem: int, channels: list[int], tag: str) -> dict:
        torch.manual_seed(0)
        cfg = cry.CryModelConfig(stem_channels=stem, channels=channels,
                                 features=FeatureConfig(n_mels=64, window_s=0.982))
        path = tmp / f"cry_{tag}.pt"
        (tmp / tag).mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, kind="cry", model_config=to_dict(cfg), state_dict=cry.build_model(cfg).state_dict(),
                        meta={})
        r = bench_export._one("cry", tmp / tag, (path, "smoke, untrained"), evaluate=False)
        return {"macs": r["macs"], "params": r["params"], "flash_bytes": r["flash_bytes"],
                "peak_activation_bytes": r["peak_activation_bytes"],
                "npu_latency_ms_rv1106": r["npu_latency_ms_est"]["rv1106"]}
    return check("export", fig(16, [16, 32], "a"), fig(32, [32, 64], "b"),
                 ["macs", "params", "flash_bytes", "peak_activation_bytes", "npu_latency_ms_rv1106"])


def _cry(tmp: Path) -> list[str]:
    """bench_cry's figures (clip ROC-AUC, false-alarm bound, long-stream rate) of a seeded untrained model on
    synthetic clips; the mutated set has longer clips and louder noise (under the cries too)."""
    import numpy as np
    import torch

    from camlab.eval.audio import (EvalSet, as_scorer, long_household_stream, long_stream_false_alarms,
                                   metrics_from_probs, stream_probabilities)
    from camlab.models import cry

    torch.manual_seed(0)
    scorer = as_scorer(cry.build_model(cry.CryModelConfig(stem_channels=16, channels=[16, 32])).eval())
    t = np.arange(16000 * 3) / 16000.0
    cries = [(tmp / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * (380 + 25 * i) * t) * (1 + np.sin(2 * np.pi * 2 * t)))
              .astype(np.float32)) for i in range(4)]

    def fig(seconds: float, level: float) -> dict:
        rng = np.random.default_rng(1)
        noise = [(tmp / f"n{i}.wav", (level * rng.standard_normal(int(16000 * seconds))).astype(np.float32))
                 for i in range(4)]
        noisy_cries = [(p, (x + level * rng.standard_normal(len(x))).astype(np.float32)) for p, x in cries]
        data = EvalSet(cry=noisy_cries, nocry=noise, skipped=[])
        m = metrics_from_probs(stream_probabilities(scorer, data), scorer.alarm)
        variants, summary = long_household_stream(data, 0.01)
        ls = long_stream_false_alarms(scorer, variants, summary)
        return {"roc_auc": m["roc_auc"], "false_alarms_per_hour_upper95": m["false_alarms_per_hour_upper95"],
                "long_stream_per_hour_upper95": ls["per_hour_upper95"], "long_stream_hours": ls["hours"]}
    return check("cry", fig(3.0, 0.05), fig(5.0, 1.0), ["roc_auc", "false_alarms_per_hour_upper95",
                                                        "long_stream_per_hour_upper95", "long_stream_hours"])


CASES: dict[str, Callable[[Path], list[str]]] = {"isp": _isp, "device_sim": _device_sim, "ota": _ota,
                                                 "storage": _storage, "network": _network, "detector": _detector,
                                                 "isp_tune": _isp_tune, "export": _export, "cry": _cry}


def _others() -> list[str]:
    bad = []
    for stem in OTHER_BENCHES:
        mod = importlib.import_module(f"benchmarks.{stem}")
        fn = getattr(mod, "smoke", None)
        if fn is None:
            print(f"skip {stem}: the module exposes no smoke() entry", flush=True)
            continue
        res = fn()
        nums = {k: v for k, v in res.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        bad += [f"{stem}.{k}: not finite ({v!r})" for k, v in nums.items() if not math.isfinite(v)]
        if not nums:
            bad.append(f"{stem}: smoke() returned no numbers")
    return bad


def main(argv: list[str] | None = None) -> int:
    wanted = set(argv if argv is not None else sys.argv[1:])
    problems: list[str] = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_smoke_") as d:
        for name, fn in CASES.items():
            if wanted and name not in wanted:
                continue
            t0 = time.perf_counter()
            bad = fn(Path(d) / name)
            print(f"smoke {name}: {'ok' if not bad else 'FAIL'} ({time.perf_counter() - t0:.1f} s)", flush=True)
            problems += bad
    if not wanted or "others" in wanted:
        problems += _others()
    for p in problems:
        print("  " + p)
    print(f"bench-smoke: {len(problems)} problem(s) in {time.perf_counter() - t_all:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
