"""Scenario files: what the simulated camera sees and hears, with the ground truth to score it against.

A scenario is a YAML file loaded into frozen dataclasses with :func:`camlab.config.load_config` (unknown keys are
rejected). Paths are relative to the data root (``data_root`` in the file, relative to the file's folder, else ``$CAMLAB_DATA``, else
``<repo>/../shared/data``, else the embedded ``datasets/demo`` slice). Any labelled YOLO folder
(``<folder>/images``, ``<folder>/labels``, YOLO txt ``class cx cy w h`` normalised) can supply actors.

```yaml
name: porch_evening            # free text
duration_s: 30.0               # simulated seconds
seed: 0                        # all randomness (noise, echo path) derives from it
backgrounds:                   # the static scene; the last one whose start_s <= t is shown
  - {image: images/coco128/val2017/images/000000000139.jpg, start_s: 0}
actors:                        # sprites cut from a labelled box, moving along a piecewise-linear path
  - folder: images/coco128/val2017     # a YOLO folder
    image: 000000000785.jpg            # file under <folder>/images
    box: 0                             # line index in <folder>/labels/<stem>.txt
    label: person                      # ground-truth class: person | pet | vehicle
    path: [[2.0, 0.1, 0.6, 0.5], [9.0, 0.9, 0.6, 0.5]]   # [t_s, cx, cy, height], normalised to the frame
lighting: [[0, 400], [20, 400], [22, 0.5]]   # [t_s, lux], linearly interpolated (drives AE and day/night)
audio:
  background: audio/household/speech_commands_background/running_tap.flac
  background_db: -35                   # level of the household track (dBFS RMS)
  cries: [{file: audio/infant_cry/donateacry/hungry/x.flac, start_s: 12, level_db: -20}]
  talkback: [{file: audio/household/spoken_digits/0_x.wav, start_s: 3, level_db: -12}]
zones:                         # normalised polygons; privacy zones are blacked out before AI and recording
  - {name: front_door, kind: detect, polygon: [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}
  - {name: neighbour_window, kind: privacy, polygon: [[0.8, 0], [1, 0], [1, 0.3], [0.8, 0.3]]}
```

Ground truth: an actor is *present* while its path is active and at least half of its box is inside the frame and
outside every privacy zone; each present interval is one ground-truth event of its class. A cry is one ground-truth
``cry`` event over ``[start_s, start_s + clip length]``. :func:`validate` checks every referenced file before a run.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from camlab.config import load_config
from camlab.errors import ConfigError, InputFileError

Label = Literal["person", "pet", "vehicle"]
CLASSES: tuple[str, ...] = ("person", "pet", "vehicle")


@dataclass(frozen=True)
class Background:
    image: str
    start_s: float = 0.0


@dataclass(frozen=True)
class Actor:
    folder: str
    image: str
    label: Label
    path: list[tuple[float, float, float, float]]
    box: int = 0

    def __post_init__(self):
        if len(self.path) < 1:
            raise ValueError("actor path needs at least one [t, cx, cy, height] key")
        ts = [p[0] for p in self.path]
        if ts != sorted(ts):
            raise ValueError(f"actor path times must increase, got {ts}")
        if any(p[3] <= 0 or p[3] > 2 for p in self.path):
            raise ValueError("actor path height must be in (0, 2] of the frame height")


@dataclass(frozen=True)
class AudioClip:
    file: str
    start_s: float
    level_db: float = -20.0


@dataclass(frozen=True)
class AudioTrack:
    background: str | None = None
    background_db: float = -40.0
    cries: list[AudioClip] = field(default_factory=list)
    talkback: list[AudioClip] = field(default_factory=list)


@dataclass(frozen=True)
class Zone:
    name: str
    polygon: list[tuple[float, float]]
    kind: Literal["detect", "privacy"] = "detect"

    def __post_init__(self):
        if len(self.polygon) < 3:
            raise ValueError(f"zone {self.name!r}: a polygon needs >= 3 points")


@dataclass(frozen=True)
class Scenario:
    name: str
    duration_s: float
    backgrounds: list[Background]
    actors: list[Actor] = field(default_factory=list)
    lighting: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 300.0)])
    audio: AudioTrack = field(default_factory=AudioTrack)
    zones: list[Zone] = field(default_factory=list)
    seed: int = 0
    data_root: str | None = None

    def __post_init__(self):
        if self.duration_s <= 0:
            raise ValueError("duration_s must be > 0")
        if not self.backgrounds:
            raise ValueError("at least one background is needed")
        if any(lux < 0 for _, lux in self.lighting):
            raise ValueError("lighting lux must be >= 0")


@dataclass(frozen=True)
class GroundTruthEvent:
    label: str          # person | pet | vehicle | cry
    start_s: float
    end_s: float
    source: str         # which actor/clip


def default_data_root() -> Path:
    """``$CAMLAB_DATA``, else ``<repo>/../shared/data``, else ``<repo>/datasets/demo``."""
    env = os.environ.get("CAMLAB_DATA")
    if env:
        return Path(env).expanduser().resolve()
    repo = Path(__file__).resolve().parents[1]
    shared = (repo.parent / "shared" / "data").resolve()
    return shared if shared.is_dir() else repo / "datasets" / "demo"


def load_scenario(path: str | Path | dict, overrides: dict | None = None) -> Scenario:
    """Load a scenario; a relative ``data_root`` in a file is relative to that file's folder (so a shipped
    scenario finds its data whatever the working directory and whether or not ``../shared`` exists)."""
    sc = load_config(Scenario, path, overrides=overrides)
    if isinstance(path, (str, Path)) and sc.data_root and not Path(sc.data_root).expanduser().is_absolute():
        sc = dataclasses.replace(sc, data_root=str((Path(path).resolve().parent / sc.data_root).resolve()))
    return sc


def resolve_root(sc: Scenario, data_root: str | Path | None = None) -> Path:
    if data_root is not None:
        return Path(data_root)
    if sc.data_root:
        return Path(sc.data_root).expanduser()
    return default_data_root()


def validate(sc: Scenario, root: Path, origin: str = "scenario") -> None:
    """Fail before the run with the field and the missing file."""
    def need(p: Path, fieldname: str):
        if not p.is_file():
            raise InputFileError(f"{origin}: {fieldname}: file not found: {p}")
    for i, bg in enumerate(sc.backgrounds):
        need(root / bg.image, f"backgrounds[{i}].image")
    for i, a in enumerate(sc.actors):
        img = root / a.folder / "images" / a.image
        need(img, f"actors[{i}].image")
        lab = root / a.folder / "labels" / (Path(a.image).stem + ".txt")
        need(lab, f"actors[{i}] labels")
        rows = [r for r in lab.read_text().splitlines() if r.strip()]
        if not 0 <= a.box < len(rows):
            raise ConfigError(f"{origin}: actors[{i}].box={a.box} but {lab} has {len(rows)} boxes")
    if sc.audio.background:
        need(root / sc.audio.background, "audio.background")
    for kind in ("cries", "talkback"):
        for i, c in enumerate(getattr(sc.audio, kind)):
            need(root / c.file, f"audio.{kind}[{i}].file")


def actor_box_norm(root: Path, a: Actor) -> tuple[float, float, float, float]:
    """The actor's labelled box in its source image, normalised (cx, cy, w, h)."""
    lab = root / a.folder / "labels" / (Path(a.image).stem + ".txt")
    rows = [r.split() for r in lab.read_text().splitlines() if r.strip()]
    try:
        _, cx, cy, w, h = rows[a.box][:5]
        return float(cx), float(cy), float(w), float(h)
    except (ValueError, IndexError):
        raise InputFileError(f"{lab}: line {a.box + 1}: expected 'class cx cy w h'") from None


def interp_path(path, t: float) -> tuple[float, float, float] | None:
    """Actor (cx, cy, height) at time ``t``; None outside the path's time span."""
    ts = np.array([p[0] for p in path])
    if t < ts[0] or t > ts[-1]:
        return None
    arr = np.array(path, dtype=float)
    return tuple(float(np.interp(t, ts, arr[:, k])) for k in (1, 2, 3))  # type: ignore[return-value]


def lux_at(sc: Scenario, t: float) -> float:
    arr = np.array(sc.lighting, dtype=float)
    return float(np.interp(t, arr[:, 0], arr[:, 1]))


def point_in_polygon(x: np.ndarray, y: np.ndarray, poly) -> np.ndarray:
    """Even-odd rule (W. R. Franklin's PNPOLY) for arrays of points."""
    inside = np.zeros(np.broadcast(x, y).shape, dtype=bool)
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        cond = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = (x2 - x1) * (y - y1) / (y2 - y1 + 1e-12) + x1
        inside ^= cond & (x < xint)
    return inside


def ground_truth(sc: Scenario, fps: float, aspect: float, sprite_aspects: list[float],
                 cry_durations: dict[str, float]) -> list[GroundTruthEvent]:
    """Ground-truth events: present intervals of each actor (sampled at ``fps``) and the cry clips.

    ``aspect``: frame width/height; ``sprite_aspects[i]``: pixel width/height of actor i's box.
    """
    events: list[GroundTruthEvent] = []
    privacy = [z.polygon for z in sc.zones if z.kind == "privacy"]
    n = int(round(sc.duration_s * fps))
    for i, a in enumerate(sc.actors):
        start = None
        last_t = 0.0
        for k in range(n):
            t = k / fps
            box = actor_frame_box(a, sprite_aspects[i], t, aspect)
            vis = box is not None and visible_fraction(box, privacy) >= 0.5
            if vis and start is None:
                start = t
            if not vis and start is not None:
                events.append(GroundTruthEvent(a.label, start, last_t, f"actors[{i}]"))
                start = None
            last_t = t
        if start is not None:
            events.append(GroundTruthEvent(a.label, start, last_t, f"actors[{i}]"))
    for i, c in enumerate(sc.audio.cries):
        dur = cry_durations.get(c.file, 0.0)
        end = min(c.start_s + dur, sc.duration_s)
        if end > c.start_s:
            events.append(GroundTruthEvent("cry", c.start_s, end, f"audio.cries[{i}]"))
    return events


def actor_frame_box(a: Actor, sprite_aspect: float, t: float, aspect: float
                    ) -> tuple[float, float, float, float] | None:
    """Normalised (x0, y0, x1, y1) of the actor in the frame at ``t`` (unclipped).

    ``sprite_aspect``: the box's pixel width/height in its source image; ``aspect``: frame width/height.
    """
    pos = interp_path(a.path, t)
    if pos is None:
        return None
    cx, cy, h = pos
    w = h * sprite_aspect / aspect
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def visible_fraction(box, privacy_polys) -> float:
    """Fraction of the box inside the frame and outside all privacy polygons (sampled on a 16x16 grid)."""
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return 0.0
    xs, ys = np.meshgrid(np.linspace(x0, x1, 16), np.linspace(y0, y1, 16))
    ok = (xs >= 0) & (xs <= 1) & (ys >= 0) & (ys <= 1)
    for poly in privacy_polys:
        ok &= ~point_in_polygon(xs, ys, poly)
    return float(ok.mean())
