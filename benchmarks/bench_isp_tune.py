"""ISP auto-tuning benchmark (issue 18): tuned vs shipped at ISO 3200 on held-out images, and 2 vs 1 workers.

Optuna (Akiba et al., KDD 2019) searches the tuning (:mod:`camlab.isp.tune`; Tseng et al., SIGGRAPH 2019; Mosleh et
al., CVPR 2020) from the shipped ``sc3336_day`` (measured first and added as trial 0, its one-knob discrete variants
as trials 1-13):
- **quality study**: display PSNR against unprocessed ground truth (4-frame fixed-camera clips with a moving box, so
  3D-DNR counts) on ``N_TUNE`` images, the one objective, with the fast path's CPU per 1280x720 frame (as a ratio to
  the shipped tuning timed beside each trial) a constraint (<= +10 %); the chosen trial is the best-PSNR trial whose
  cost, re-timed against the shipped tuning in one process, is within +10 %, of the trials that leave no more
  defective photosites visible than the shipped tuning on the defect guard's dense-defect scenes. Written to
  ``camlab/isp/tuning/sc3336_night_tuned.yaml``. Held-out: ``N_HELDOUT`` other images (PSNR, SSIM), CIEDE2000 on the
  colour-chart DNG, and the release detector on ``N_DET_HELDOUT`` night renders.
- **quality-only study**: the same search without the cost constraint (its pick may cost any CPU): the quality the
  space holds, with its cost ratio beside it; and the shipped tuning's fast-path cost with each demosaic method.
- **detection study**: the release detector's person presence recall at <= 2 % false positives (the threshold
  read per tuning on the set's person-free images, so two tunings are compared at the same FP rate) on
  ``N_DET_TUNE`` validation images rendered at ISO 3200 (every third person-free), each with ``DET_RENDERS`` noise
  draws, under the same cost constraint; held-out on the other ``N_DET_HELDOUT`` validation images of the
  interleave (its end), ``DET_RENDERS`` draws each. The previous run's detection pick (read from the results JSON
  before it is overwritten) is re-scored on the same held-out renders, and the pick is also scored on
  ``N_DET_TRAIN_SIDE`` train-side images as a diagnostic only: the detector trained on those photos, and there a
  pick that lost 10 points on the held-out renders gained 18 (2026-12-07), so they cannot check a pick.
- **detection confirmation**: the detection pick and the PSNR pick against the shipped tuning on the same held-out
  images with ``DET_CONFIRM_RENDERS`` fresh noise draws each (another seed). A pick meets the detection route only if
  its gain holds in both sets of draws: on 2026-12-07 the PSNR pick gained 5.68 points on the held-out renders and
  lost 0.66 on all 57 validation images with 8 fresh draws (a one-off probe).
- **scaling**: the same ``N_SCALING`` single-objective trials (``numbered`` sampler: trial k's tuning is fixed by k)
  on a fresh SQLite store with 1 worker process (default numba threads, and one thread) and with 2 (one numba
  thread each), alternated ``SCALING_ROUNDS`` times; wall time of the workers (spawn + data + trials). TPE runs with
  1 and 2 workers beside them show the study as it runs (each worker draws its own trials, so their work differs).
The fast path's cost ratio is measured in the same run, shipped and tuned alternating.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np

NAME = "isp_tune"
ISO = 3200.0
N_TUNE, N_HELDOUT = 12, 24
# 300 trials (150 until 2026-12-07 14:00): with 16 parameters, the 13:43 run's 150 found the luma-guided chroma NR
# at +0.5647 dB on the tuning scenes while a hand-set point of the same space (guide 1, chroma strength 4, tap
# step 2, on the 13:10 pick) scored +0.7381 there: the search, not the space, was short. A PSNR trial costs ~0.3 s.
N_TRIALS_QUALITY = 300
# then 150 CMA-ES trials around the best feasible trial (TuneConfig.refine_trials): the 18:40 run of 2026-12-07 kept
# its warm start's variant (the luma cross window) with the warm start's continuous knobs as they were, while a
# one-off probe of lowered Malvar gains on the previous pick had gained +0.063 dB held out: TPE had not moved them
N_REFINE_QUALITY = 150
# 24 tuning images, 60 trials (were 12 and 20): on 12 images the study of 2026-12-07 07:02 UTC picked a trial 0.0038
# AP50 better there that lost 3 of 16 people on the held-out renders. A one-off CLI run with 24 and 60 (07:51 UTC)
# preceded this change and gained 2 of 16 people on the held-out renders: that run saw these held-out images.
# 33 held out: the validation interleave ends at 57 images (19 person-free); 4 noise draws each, because one draw
# alone moved the shipped tuning's recall by 3 of 38 people, and a fixed threshold let a brighter pick "gain" recall
# while its false positives rose from 2.3 % to 9.1 % (2026-12-07): recall is compared at <= 2 % FP instead
N_DET_TUNE, N_DET_HELDOUT, N_TRIALS_DET = 24, 33, 60
DET_RENDERS = 4
DET_CONFIRM_RENDERS, DET_CONFIRM_SEED = 8, 977
DET_OBJECTIVE = "detection_recall"
N_SCALING, SCALING_ROUNDS = 40, 2         # 40: TuneConfig's default --trials, a study as a user runs it
TARGETS = {"heldout_psnr_gain_db_min": 1.0, "detection_recall_gain_points_min": 5.0,
           "cpu_cost_ratio_max": 1.10, "two_worker_wall_ratio_max": 0.6}


def _cfg(tmp: Path, tag: str, **kw):
    from camlab.isp.tune.study import TuneConfig

    base = dict(iso=ISO, storage=f"sqlite:///{tmp / (tag + '.db')}", study_name=f"bench-{tag}",
                n_tune_images=N_TUNE, n_heldout_images=N_HELDOUT, n_detection_images=N_DET_TUNE,
                out=str(tmp / f"{tag}_tuned.yaml"), mlflow=False)
    base.update(kw)
    return TuneConfig(**base)


def _trial_params(study, n: int) -> list[dict]:
    """The tunings of trials 0..n-1 (two workers may start one trial more than n before they see the count)."""
    return [t.params for t in sorted(study.trials, key=lambda t: t.number)[:n]]


def scaling(tmp: Path, n_trials: int = N_SCALING, rounds: int = SCALING_ROUNDS, **kw) -> dict:
    """Wall time of ``n_trials`` trials with 1 and 2 worker processes on fresh SQLite stores (alternated).

    The target figure uses the ``numbered`` sampler, so both runs evaluate the same tunings (checked here:
    ``same_trials``); the TPE runs show the study as it runs, where each worker draws its own trials."""
    from camlab.isp.tune.study import create_study, open_storage, run_workers

    import optuna

    # (workers, numba threads per worker, sampler): one worker with the default threads (what runs without
    # --workers), one worker on one thread (the process-scaling baseline), two workers on one thread each
    setups = {"1w": (1, None, "numbered"), "1w_1thread": (1, 1, "numbered"), "2w": (2, 1, "numbered"),
              "1w_tpe": (1, None, "tpe"), "2w_tpe": (2, 1, "tpe")}
    walls: dict[str, list[float]] = {k: [] for k in setups}
    counts: dict[str, list[int]] = {k: [] for k in setups}
    params: dict[str, list[list[dict]]] = {k: [] for k in setups}
    for r in range(rounds):
        for key, (w, threads, sampler) in setups.items():
            cfg = _cfg(tmp, f"scale{key}_{r}", trials=n_trials, workers=w, sampler=sampler, **kw)
            storage = open_storage(cfg.storage)
            create_study(cfg, storage)
            walls[key].append(run_workers(cfg, numba_threads=threads))
            study = optuna.load_study(study_name=cfg.name, storage=storage)
            counts[key].append(len(study.trials))
            params[key].append(_trial_params(study, n_trials))
    numbered = [p for k in ("1w", "1w_1thread", "2w") for p in params[k]]
    med = {k: float(np.median(v)) for k, v in walls.items()}
    return {"scaling_n_trials": n_trials, "scaling_rounds": rounds,
            "scaling_trials_run": counts,
            "same_trials": all(p == numbered[0] for p in numbered),
            "one_worker_wall_s": round(med["1w"], 2), "one_worker_1thread_wall_s": round(med["1w_1thread"], 2),
            "two_workers_wall_s": round(med["2w"], 2),
            "wall_s_runs": {k: [round(x, 2) for x in v] for k, v in walls.items()},
            "two_vs_one_worker_wall_ratio": round(med["2w"] / med["1w"], 3),
            "two_vs_one_worker_1thread_wall_ratio": round(med["2w"] / med["1w_1thread"], 3),
            "tpe_one_worker_wall_s": round(med["1w_tpe"], 2), "tpe_two_workers_wall_s": round(med["2w_tpe"], 2),
            "tpe_two_vs_one_worker_wall_ratio": round(med["2w_tpe"] / med["1w_tpe"], 3)}


def _summary(r: dict, keep_space: bool = False) -> dict:
    out = {k: v for k, v in r.items() if k != "space" or keep_space}
    return out


def previous_tuned_file(tmp: Path) -> Path | None:
    """A copy (in ``tmp``) of the tuned file in the tuning folder at the run's start, the previous run's pick, or
    None: the PSNR study measures it as a trial first, so a run starts from the best point known instead of
    finding it again (TPE runs of the same space ended 0.15 dB apart on held-out images, 2026-12-07)."""
    import shutil

    from camlab.isp.tune.study import DEFAULT_OUT

    src = Path(DEFAULT_OUT)
    if not src.is_file():
        return None
    dst = tmp / "previous_psnr_pick.yaml"
    shutil.copyfile(src, dst)
    return dst


def warm_start_record(warm: Path | None, q: dict) -> dict:
    """What the study was seeded with (the file's header lines and sha256) and whether the pick is that trial."""
    from camlab.contract.manifest import sha256_file

    if warm is None:
        return {"file": None}
    header = [ln[2:].strip() for ln in warm.read_text().splitlines()[:3] if ln.startswith("#")]
    trial = next((t for t in q.get("warm_start_trials", [])), None)
    return {"file": "camlab/isp/tuning/sc3336_night_tuned.yaml at the run's start", "sha256": sha256_file(warm),
            "header": header, "trial": trial,
            "chosen_is_warm_start": trial is not None and trial.get("number") == q["chosen_trial"]["number"]}


def quality_study(tmp: Path, **kw) -> dict:
    """The PSNR study under the cost limit, its tuned YAML written to the shipped-tuning folder as a NEW file."""
    from camlab.isp.tune.study import DEFAULT_OUT, tune

    cfg = _cfg(tmp, "quality", trials=N_TRIALS_QUALITY, refine_trials=N_REFINE_QUALITY, workers=2,
               cost_constraint=True,
               n_detection_heldout=N_DET_HELDOUT, detection_heldout_renders=DET_RENDERS, out=DEFAULT_OUT,
               mlflow=True, study_name="bench-isp-psnr-iso3200")
    cfg = dataclasses.replace(cfg, **kw)
    return _summary(tune(cfg), keep_space=True)


def quality_only_study(tmp: Path, **kw) -> dict:
    """The same PSNR search without the cost objective (single-objective, the best eligible trial): what quality the
    search space holds when CPU is free, and at what cost (its tuned YAML stays in ``tmp``)."""
    from camlab.isp.tune.study import tune

    cfg = _cfg(tmp, "quality_only", trials=N_TRIALS_QUALITY, refine_trials=N_REFINE_QUALITY, workers=2,
               multi_objective=False)
    return _summary(tune(dataclasses.replace(cfg, **kw)))


def demosaic_costs(rounds: int = 5) -> dict:
    """Fast-path CPU ms per 1280x720 frame of the shipped tuning with each demosaic method (one numba thread, min of
    5 frames; median of ``rounds`` alternating rounds): what choosing a demosaic costs the cost-limited search."""
    from camlab.isp.pipeline import load_tuning
    from camlab.isp.quality import load_quality_images
    from camlab.isp.stages.demosaic import METHODS
    from camlab.isp.tune import objectives as ob

    base = load_tuning("sc3336_day")
    frame = ob.cost_frame(load_quality_images(1)[0][1], ISO)
    ms: dict[str, list[float]] = {m: [] for m in METHODS}
    for _ in range(rounds):
        for m in METHODS:
            ms[m].append(ob.fast_path_cpu_ms(dataclasses.replace(base, demosaic=dataclasses.replace(base.demosaic,
                                                                                                    method=m)), frame))
    med = {m: float(np.median(v)) for m, v in ms.items()}
    ref = med[base.demosaic.method]
    return {"cpu_ms_1280x720": {m: round(v, 3) for m, v in med.items()},
            "ratio_vs_shipped": {m: round(v / ref, 4) for m, v in med.items()}, "shipped": base.demosaic.method}


#: fixed one-off tunings the README's analysis quotes: what the demosaic and its gains, the chroma window, the luma
#: windows and the 3D-DNR motion window are worth on their own, each a change of the shipped tuning
PROBES = {
    "directional": {"demosaic.method": "directional"},
    "directional_chroma_r3_k2": {"demosaic.method": "directional", "nr2d.radius_c": 3, "nr2d.strength_c": 2.0},
    "malvar_chroma_r3_k2": {"nr2d.radius_c": 3, "nr2d.strength_c": 2.0},
    "luma_r2": {"nr2d.radius_y": 2},
    "chroma_median": {"nr2d.median_c": True},
    "directional_chroma_median": {"demosaic.method": "directional", "nr2d.median_c": True},
    # 3D-DNR's block motion window; its thresholds move as the search's variants move them (the shipped ones x
    # BLOCK_THRESHOLD_SCALE: 0.9 / 2.4), see probe_params
    "block_motion_window": {"nr3d.motion_window": "block"},
    "directional_chroma_median_block_motion": {"demosaic.method": "directional", "nr2d.median_c": True,
                                               "nr3d.motion_window": "block"},
    # the luma cross window (the 3x3 plus four axial taps) at the shipped strength
    "luma_cross": {"nr2d.window_y": "cross"},
    # Malvar's correction gains lowered (alpha x 0.85, beta and gamma x 0.65 of the paper's), a one-off probe's point
    "malvar_gains_low": {"demosaic.malvar_alpha": 0.425, "demosaic.malvar_beta": 0.41, "demosaic.malvar_gamma": 0.49},
    # the linear colour-difference demosaic (directional's plane at a fixed weight 1/2) at its default smoothing, and
    # with the chroma median beside it (directional_chroma_median's twin at Malvar's cost)
    "colour_difference": {"demosaic.method": "colour_difference"},
    "colour_difference_chroma_median": {"demosaic.method": "colour_difference", "nr2d.median_c": True},
}


def probe_params(params: dict, base) -> dict:
    """A probe's changes of ``base`` with the fields its choices move (:func:`camlab.isp.tune.study.with_companions`,
    the rule the search's one-knob variants follow), as they go into the JSON."""
    from camlab.isp.tune.space import load_space
    from camlab.isp.tune.study import base_params, with_companions

    space = load_space(None, "psnr", base)
    point = base_params(space, base)
    out = dict(params)
    for name, value in params.items():
        if name in space:
            moved = with_companions(space, point, name, value)
            out.update({k: v for k, v in moved.items() if k != name and v != point.get(k)})
    return out


def probes(tmp: Path) -> dict:
    """PSNR gains of :data:`PROBES` over the shipped tuning on the tuning and held-out scenes at ISO 3200, their CPU
    ratio (timed beside the shipped tuning), and the shipped tuning's PSNR on the tuning images without noise (ISO
    100, no defects): how much of the error at ISO 3200 is noise at all."""
    from camlab.isp.pipeline import load_tuning
    from camlab.isp.tune import objectives as ob
    from camlab.isp.tune.space import apply
    from camlab.isp.tune.study import Evaluator

    base = load_tuning("sc3336_day")
    cfg = _cfg(tmp, "probes")
    tune_ev, held_ev = Evaluator(cfg, with_cost=True, with_chart=False), Evaluator(cfg, heldout=True, with_chart=False)
    quiet = Evaluator(dataclasses.replace(cfg, iso=100.0, defect_ppm=0.0, defect_guard_ppm=0.0), with_chart=False)
    ref = {"tune": ob.quality(base, tune_ev.scenes)["psnr_db"], "heldout": ob.quality(base, held_ev.scenes)["psnr_db"]}
    out: dict = {"shipped_psnr_db": {k: round(v, 4) for k, v in ref.items()},
                 "shipped_psnr_db_iso100_no_defects_tune": round(ob.quality(base, quiet.scenes)["psnr_db"], 4)}
    for name, params in PROBES.items():
        params = probe_params(params, base)
        t = apply(base, params)
        ratios = [tune_ev.cost_ratio(t, base)[0] for _ in range(3)]
        out[name] = {"params": params,
                     "tune_psnr_gain_db": round(ob.quality(t, tune_ev.scenes)["psnr_db"] - ref["tune"], 4),
                     "heldout_psnr_gain_db": round(ob.quality(t, held_ev.scenes)["psnr_db"] - ref["heldout"], 4),
                     "cpu_ratio": round(float(np.median(ratios)), 4)}
    return out


def _detection_cfg(tmp: Path):
    return _cfg(tmp, "detection", objective=DET_OBJECTIVE, trials=N_TRIALS_DET, workers=2, cost_constraint=True,
                n_detection_heldout=N_DET_HELDOUT, detection_renders=DET_RENDERS,
                detection_heldout_renders=DET_RENDERS)


def detection_study(tmp: Path, **kw) -> dict:
    from camlab.isp.tune.study import tune

    return _summary(tune(dataclasses.replace(_detection_cfg(tmp), **kw)))


N_DET_TRAIN_SIDE = 72


def paired_detection(params: dict, ds, shipped: dict | None = None) -> dict:
    """A tuning (``params`` over the shipped one) against the shipped tuning on the detection set ``ds``: recall at
    the bundle's threshold and at <= 2 % FP (the threshold read per tuning), AP50, gains in points. ``shipped``:
    the shipped tuning's result on ``ds`` when already measured."""
    from camlab.isp.pipeline import load_tuning
    from camlab.isp.tune import objectives as ob
    from camlab.isp.tune.space import apply

    base = load_tuning("sc3336_day")
    s = shipped if shipped is not None else ob.detection(base, ds)
    t = ob.detection(apply(base, params), ds)
    n_pos = int(s["n_detection_renders"] - s["n_person_free_images"])
    return {"n_images": len(ds.samples), "renders_per_image": ds.renders, "n_person_images": n_pos,
            "n_person_free_images": s["n_person_free_images"], "shipped": s, "tuned": t,
            "person_recall_at_fp_gain_points": round(100 * (t["person_recall_at_fp"] - s["person_recall_at_fp"]), 2),
            "person_recall_gain_points": round(100 * (t["person_recall"] - s["person_recall"]), 2),
            "person_ap50_gain": round(t["person_ap50"] - s["person_ap50"], 4),
            "person_fp_rate_gain": round(t["person_fp_rate"] - s["person_fp_rate"], 4)}


def train_side_detection(params: dict, n: int = N_DET_TRAIN_SIDE) -> dict:
    """The detection pick on the first ``n`` images of the split's TRAIN side interleave, ``DET_RENDERS`` draws
    each: a diagnostic, not a check. The detector trained on these photos, and tunings that lift its scores gain
    there what they lose on images it never saw."""
    from camlab.isp.tune import objectives as ob

    return paired_detection(params, ob.detection_set(n, 0, ISO, side="train", seed=13, renders=DET_RENDERS))


def previous_pick(path: Path) -> dict | None:
    """The detection pick of the results JSON at ``path`` (the previous run), or None."""
    import json

    try:
        old = json.loads(path.read_text())
        return {"params": old["detection_study"]["chosen_trial"]["params"],
                "git_commit": old.get("machine", {}).get("git", {}).get("commit"),
                "date_utc": old.get("machine", {}).get("date_utc")}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def previous_pick_on_heldout(prev: dict | None, tmp: Path) -> dict | None:
    """The previous run's detection pick re-scored on this run's held-out renders, the detection study's own (its
    own run may have used another protocol)."""
    from camlab.isp.tune import objectives as ob

    if prev is None:
        return None
    cfg = _detection_cfg(tmp)
    side, offset, n = cfg.detection_images(True)
    ds = ob.detection_set(n, offset, ISO, side=side, seed=cfg.detection_seed(True),
                          renders=cfg.detection_heldout_renders)
    return dict(prev, **paired_detection(prev["params"], ds))


def detection_confirmation(picks: dict[str, dict], tmp: Path) -> dict:
    """Each pick (name -> params over the shipped tuning) against the shipped tuning on the held-out detection
    images again, with ``DET_CONFIRM_RENDERS`` fresh noise draws each (seed ``DET_CONFIRM_SEED``): a gain that holds
    in one set of draws only is noise."""
    from camlab.isp.pipeline import load_tuning
    from camlab.isp.tune import objectives as ob

    cfg = _detection_cfg(tmp)
    side, offset, n = cfg.detection_images(True)
    ds = ob.detection_set(n, offset, ISO, side=side, seed=DET_CONFIRM_SEED, renders=DET_CONFIRM_RENDERS)
    shipped = ob.detection(load_tuning("sc3336_day"), ds)
    return {"seed": DET_CONFIRM_SEED, **{name: paired_detection(p, ds, shipped) for name, p in picks.items()}}


def detection_route_met(heldout_points: float | None, heldout_ap50_gain: float | None, confirmation: dict,
                        cost_ratio: float) -> bool:
    """The detection route for one pick: person recall at <= 2 % FP up by the bound on the held-out renders AND on
    their fresh-draw confirmation, AP50 not lower in either (a pick may trade localisation for presence), the fast
    path's cost within the limit."""
    bound = TARGETS["detection_recall_gain_points_min"]
    return bool(heldout_points is not None and heldout_points >= bound and (heldout_ap50_gain or 0.0) >= 0.0
                and confirmation["person_recall_at_fp_gain_points"] >= bound
                and confirmation["person_ap50_gain"] >= 0.0 and cost_ratio <= TARGETS["cpu_cost_ratio_max"])


def _pair(name: str, part: dict, key: str) -> dict:
    """``{name}_shipped`` and ``{name}_tuned``: ``key`` of a held-out/tuning-set block's two results."""
    return {f"{name}_shipped": part["shipped"].get(key), f"{name}_tuned": part["tuned"].get(key)}


def _points(gain: float | None) -> float | None:
    return None if gain is None else round(100 * gain, 2)


def _target(value, bound, kind: str) -> dict:
    met = None if value is None else (value >= bound if kind == "min" else value <= bound)
    return {"value": value, "bound": bound, "kind": kind, "met": met}


def detector_identity() -> dict:
    """Which detector the detection figures come from: the bundle or checkpoint the objectives resolve (the newest
    release bundle), with the sha256 of what runs (the bundle's INT8 model.onnx, or the checkpoint file)."""
    from camlab.contract.manifest import sha256_file
    from camlab.isp.tune import objectives as ob

    model = Path(ob.release_model())
    target = model / "model.onnx" if model.is_dir() else model
    return {"path": model.name if model.is_dir() else str(model), "file": target.name,
            "sha256": sha256_file(target) if target.is_file() else None}


def run() -> dict:
    import optuna

    from camlab.isp.tune.study import DEFECT_GUARD_FRAMES, TuneConfig

    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    prev = previous_pick(Path(__file__).resolve().parent / "results" / f"{NAME}.json")
    with tempfile.TemporaryDirectory(prefix="camlab_isp_tune_") as d:
        tmp = Path(d)
        result: dict = {"iso": ISO, "optuna": optuna.__version__, "base_tuning": "sc3336_day",
                        "detector": detector_identity()}
        warm = previous_tuned_file(tmp)
        result["scaling"] = scaling(tmp)
        q = quality_study(tmp, warm_start=(str(warm),) if warm else ())
        q["warm_start"] = warm_start_record(warm, q)
        result["quality_study"] = q
        qo = quality_only_study(tmp)
        result["quality_only_study"] = qo
        result["demosaic_costs"] = demosaic_costs()
        result["probes"] = probes(tmp)
        det = detection_study(tmp)
        result["detection_study"] = det
        result["detection_train_side"] = train_side_detection(det["chosen_trial"]["params"])
        result["detection_previous_pick"] = previous_pick_on_heldout(prev, tmp)
        result["detection_confirmation"] = detection_confirmation(
            {"detection_pick": det["chosen_trial"]["params"], "psnr_pick": q["chosen_trial"]["params"]}, tmp)
    qh = q["heldout"]
    dh = det["heldout"]
    psnr_gain = qh["psnr_db_gain"]
    det_gain_q = qh.get("person_recall_at_fp_gain")
    det_gain_d = dh.get("person_recall_at_fp_gain")
    result["headline"] = {
        "heldout_psnr_db_shipped": qh["shipped"]["psnr_db"], "heldout_psnr_db_tuned": qh["tuned"]["psnr_db"],
        "heldout_psnr_gain_db": psnr_gain, "tune_set_psnr_gain_db": q["tune_set"]["psnr_db_gain"],
        "quality_only_heldout_psnr_gain_db": qo["heldout"]["psnr_db_gain"],
        "quality_only_tune_set_psnr_gain_db": qo["tune_set"]["psnr_db_gain"],
        "quality_only_cpu_cost_ratio": qo["cpu_cost_ratio_tuned_vs_shipped"],
        "quality_only_demosaic": qo["chosen_trial"]["params"].get("demosaic.method"),
        "directional_vs_shipped_demosaic_cpu_ratio": result["demosaic_costs"]["ratio_vs_shipped"]["directional"],
        "heldout_ssim_gain": qh["ssim_gain"], "heldout_delta_e_mean_shipped": qh["shipped"]["delta_e_mean"],
        "heldout_delta_e_mean_tuned": qh["tuned"]["delta_e_mean"],
        "heldout_defect_sites": qh["shipped"].get("defect_sites"),
        **_pair("heldout_defects_visible", qh, "defects_visible"),
        "heldout_defect_guard_sites": qh["shipped"].get("defect_guard_sites"),
        **_pair("heldout_defect_guard_visible", qh, "defect_guard_visible"),
        **_pair("tune_set_defect_guard_visible", q["tune_set"], "defect_guard_visible"),
        "cpu_cost_ratio_tuned_vs_shipped": q["cpu_cost_ratio_tuned_vs_shipped"],
        "psnr_tuned_heldout_person_recall_at_fp_gain_points": _points(det_gain_q),
        "detection_tuned_heldout_person_recall_at_fp_gain_points": _points(det_gain_d),
        "detection_tuned_heldout_person_recall_fixed_threshold_gain_points": _points(dh.get("person_recall_gain")),
        "detection_tuned_heldout_person_fp_rate_fixed_threshold_gain": dh.get("person_fp_rate_gain"),
        "detection_tuned_heldout_person_ap50_gain": dh.get("person_ap50_gain"),
        "detection_tuned_train_side_person_recall_at_fp_gain_points":
            result["detection_train_side"]["person_recall_at_fp_gain_points"],
        "previous_detection_pick_heldout_person_recall_at_fp_gain_points":
            None if prev is None else result["detection_previous_pick"]["person_recall_at_fp_gain_points"],
        "detection_renders_per_image": DET_RENDERS,
        **_pair("detection_heldout_person_recall_at_fp", dh, "person_recall_at_fp"),
        **_pair("detection_heldout_person_fp_rate_at_fp", dh, "person_fp_rate_at_fp"),
        **_pair("detection_heldout_person_recall", dh, "person_recall"),
        "detection_tuned_tune_set_person_ap50_gain": det["tune_set"].get("person_ap50_gain"),
        "detection_cpu_cost_ratio_tuned_vs_shipped": det["cpu_cost_ratio_tuned_vs_shipped"],
        "two_vs_one_worker_wall_ratio": result["scaling"]["two_vs_one_worker_wall_ratio"],
        "two_vs_one_worker_1thread_wall_ratio": result["scaling"]["two_vs_one_worker_1thread_wall_ratio"],
        "tpe_two_vs_one_worker_wall_ratio": result["scaling"]["tpe_two_vs_one_worker_wall_ratio"],
        "scaling_same_trials": result["scaling"]["same_trials"],
        **_pair("detection_heldout_person_fp_rate", dh, "person_fp_rate"),
        "detection_heldout_n_person_free_images": dh["shipped"].get("n_person_free_images"),
        **_pair("detection_heldout_person_empty_scene_fp_rate", dh, "person_empty_scene_fp_rate"),
        "n_heldout_images": N_HELDOUT, "n_tune_images": N_TUNE, "n_detection_tune_images": N_DET_TUNE,
        "n_detection_heldout_images": N_DET_HELDOUT, "n_trials_quality": q["n_trials"],
        "n_trials_detection": det["n_trials"]}
    h = result["headline"]
    conf = result["detection_confirmation"]
    for pick in ("detection_pick", "psnr_pick"):
        h[f"{pick}_confirmation_person_recall_at_fp_gain_points"] = conf[pick]["person_recall_at_fp_gain_points"]
        h[f"{pick}_confirmation_person_ap50_gain"] = conf[pick]["person_ap50_gain"]
    h["confirmation_renders_per_image"] = DET_CONFIRM_RENDERS
    h["psnr_tuned_heldout_person_ap50_gain"] = qh.get("person_ap50_gain")
    cost_ok = h["cpu_cost_ratio_tuned_vs_shipped"] <= TARGETS["cpu_cost_ratio_max"]
    det_points = h["detection_tuned_heldout_person_recall_at_fp_gain_points"]
    result["targets"] = {
        "heldout PSNR gain at ISO 3200 (dB)": _target(psnr_gain, TARGETS["heldout_psnr_gain_db_min"], "min"),
        "held-out person recall gain at <= 2 % FP, detection-tuned (points)": _target(
            det_points, TARGETS["detection_recall_gain_points_min"], "min"),
        "fast-path CPU cost ratio, PSNR-tuned / shipped": _target(
            h["cpu_cost_ratio_tuned_vs_shipped"], TARGETS["cpu_cost_ratio_max"], "max"),
        "fast-path CPU cost ratio, detection-tuned / shipped": _target(
            h["detection_cpu_cost_ratio_tuned_vs_shipped"], TARGETS["cpu_cost_ratio_max"], "max"),
        "2 workers / 1 worker wall time, same trials": _target(
            h["two_vs_one_worker_wall_ratio"], TARGETS["two_worker_wall_ratio_max"], "max")}
    quality_ok = bool(psnr_gain >= TARGETS["heldout_psnr_gain_db_min"] and cost_ok)
    n_pos = int(dh["shipped"]["n_detection_renders"] - dh["shipped"]["n_person_free_images"])
    h["detection_heldout_n_person_renders"] = n_pos
    h["detection_heldout_n_person_free_renders"] = int(dh["shipped"]["n_person_free_images"])
    h["detection_heldout_recall_at_fp_gain_renders"] = int(round((det_gain_d or 0.0) * n_pos))
    det_pick_ok = detection_route_met(det_points, dh.get("person_ap50_gain"), conf["detection_pick"],
                                      h["detection_cpu_cost_ratio_tuned_vs_shipped"])
    psnr_pick_det = detection_route_met(_points(det_gain_q), qh.get("person_ap50_gain"), conf["psnr_pick"],
                                        h["cpu_cost_ratio_tuned_vs_shipped"])
    det_solid = det_pick_ok or psnr_pick_det
    result["targets_met"] = {
        "quality (PSNR >= +1.0 dB held-out with cost within +10 %, or person recall at <= 2 % FP >= +5 points with "
        "cost within +10 % and AP50 not lower, on held-out renders)": quality_ok or det_solid,
        "psnr_route": quality_ok, "detection_route": det_solid, "detection_route_by_psnr_pick": psnr_pick_det,
        "two_workers_le_0.6x": bool(h["scaling_same_trials"]
                                    and h["two_vs_one_worker_wall_ratio"] <= TARGETS["two_worker_wall_ratio_max"])}
    result["protocol"] = {
        "quality": f"display PSNR/SSIM vs unprocessing truth (Brooks 2019), ISO {ISO:g}, 4-frame fixed-camera clips "
                   "with the central box moving 4 px/frame, 3D-DNR state kept, last frame scored; images resized to "
                   f"256 px long side; tuning images = quality images [0, {N_TUNE}), held-out = [{N_TUNE}, "
                   f"{N_TUNE + N_HELDOUT}) of camlab.isp.quality.quality_image_paths; every scene's sensor has "
                   f"{TuneConfig().defect_ppm:g} defective photosites per million (80 % hot, 20 % dead, fixed across "
                   "the clip; camlab.isp.tune.objectives.with_defects), the same for shipped and tuned",
        "harness": "as-shot WB/CCM, exposure from the truth, sRGB transfer without S-curve, no LSC, AE off (what a "
                   "calibrated camera knows; the same for shipped and tuned)",
        "delta_e": "CIEDE2000 of the 24 ColorChecker patches of raw/colorchart.dng (real capture, its own noise) vs "
                   "X-Rite reference after one exposure scale fitted on the neutral patches",
        "detection": f"newest release INT8 bundle, colour renders at ISO {ISO:g}, {DET_RENDERS} noise draws per "
                     "image each scored as an image; federated person AP50, and presence recall at <= 2 % false "
                     "positives on the set's person-free renders (threshold read per tuning: the same FP rate for "
                     "both; camlab.isp.tune.objectives.recall_at_fp) and at the bundle's threshold (its FP rate "
                     f"beside); search objective: {DET_OBJECTIVE}; tuning images = the first {N_DET_TUNE} of a "
                     f"deterministic person-labelled validation interleave, held-out = the other {N_DET_HELDOUT}",
        "cost": "fused fast path, CPU ms per 1280x720 frame of the thread that runs it, one numba thread, min of 5 "
                "frames, median of 3 alternating shipped/tuned rounds, in this process; in the studies each trial "
                "(the shipped one too) is timed between two timings of the shipped tuning in its worker process, and "
                "the ratio is its cost constraint",
        "choice": "quality and detection studies: one objective (PSNR / person AP50) under the cost constraint; of "
                  "the best-quality trials whose in-study ratio is within +15.5 %, the first "
                  "whose CPU cost re-timed against the shipped tuning in one process (median of 3 alternating "
                  "ratios) is within +10 % (retimed_candidates); the shipped trial when none is; only trials that "
                  f"leave at most {100 * TuneConfig().defect_margin:g} % (at least 1) more defects visible on the "
                  f"defect guard's scenes (the tuning images as {DEFECT_GUARD_FRAMES}-frame clips with "
                  f"{TuneConfig().defect_guard_ppm:g} defective photosites per million) than the shipped one "
                  "take part (camlab.isp.tune.study.eligible_trials)",
        "detection_train_side": f"diagnostic only: the detection pick and the shipped tuning on the first "
                                f"{N_DET_TRAIN_SIDE} images of the same interleave on the split's train side; the "
                                "detector trained on these photos, so a tuning that lifts its scores gains there",
        "detection_previous_pick": "the previous results JSON's detection pick, re-scored on this run's held-out "
                                   "renders beside the shipped tuning",
        "detection_confirmation": f"the detection pick and the PSNR pick vs shipped on the same {N_DET_HELDOUT} "
                                  f"held-out images with {DET_CONFIRM_RENDERS} fresh noise draws each (seed "
                                  f"{DET_CONFIRM_SEED}); the detection route counts a pick (either) only if its "
                                  "recall gain at <= 2 % FP is >= the bound and its AP50 not lower in both sets of "
                                  "draws, its cost within +10 %",
        "detection_fp": "every third detection image is person-free (person-labelling sources), so the FP rate is "
                        "measured on few negatives (see n_person_free_images); the empty-scene strips give more",
        "scaling": f"{N_SCALING} single-objective PSNR trials per store (the CLI's default --trials), fresh SQLite "
                   "files in WAL mode, workers spawned, wall time from the first spawn to the last exit, one numba "
                   "thread per worker with 2 workers, the default thread count with 1; the target figure with the "
                   "numbered sampler (trial k's tuning fixed by k: the same trials for 1 and 2 workers, checked as "
                   "same_trials), TPE beside it (each worker draws its own trials)"}
    result["isp_tune_loadavg_1min_at_start"] = round(load0, 2)
    result["isp_tune_loadavg_1min_at_end"] = round(os.getloadavg()[0], 2)
    result["bench_wall_s"] = round(time.perf_counter() - t0, 1)
    return result


def smoke_figures(tmp: Path, iso: float) -> dict:
    """The bench's code on a tiny study (12 trials: the shipped one, its 10 one-knob variants and 1 drawn; 2 + 2
    images at 64 px, 2 workers): the keys the README quotes."""
    from camlab.isp.tune.study import tune

    tmp.mkdir(parents=True, exist_ok=True)
    cfg = _cfg(tmp, f"smoke{int(iso)}", iso=iso, trials=12, workers=2, cost_constraint=True, n_tune_images=2,
               n_heldout_images=2, max_side=64)
    r = tune(cfg, log=lambda *_: None)
    return {"heldout_psnr_db_shipped": r["heldout"]["shipped"]["psnr_db"],
            "heldout_psnr_db_tuned": r["heldout"]["tuned"]["psnr_db"],
            "heldout_psnr_gain_db": r["heldout"]["psnr_db_gain"],
            "cpu_cost_ratio_tuned_vs_shipped": r["cpu_cost_ratio_tuned_vs_shipped"], "wall_s": r["wall_s"]}

