"""Scenario YAML (``device_sim.scenario.load_scenario`` + ``validate``), then what a run derives from it first: the
light level over time, each actor's path and the zones' polygons. A scenario file is user input: it must load or
fail with ConfigError / InputFileError, never with a traceback from deeper in the run."""
from __future__ import annotations

INSTRUMENT = ("device_sim.scenario", "camlab.config")


def setup():
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    import numpy as np

    from camlab.errors import ConfigError, InputFileError
    from device_sim import scenario as S

    tmp = Path(tempfile.mkdtemp(prefix="camlab-fuzz-scn-"))
    atexit.register(shutil.rmtree, tmp, True)
    data = tmp / "data"
    for rel, text in (("bg.jpg", "x"), ("people/images/p.jpg", "x"), ("people/labels/p.txt", "0 .5 .5 .2 .4\n"),
                      ("cry.wav", "x")):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_text(text)
    path = tmp / "scenario.yaml"
    probe_x, probe_y = np.array([0.1, 0.5, 0.9]), np.array([0.1, 0.5, 0.9])

    def one(buf: bytes) -> None:
        path.write_bytes(buf)
        sc = S.load_scenario(path)
        S.validate(sc, data)
        for t in (0.0, sc.duration_s / 2, sc.duration_s):
            S.lux_at(sc, t)
            for a in sc.actors:
                S.interp_path(a.path, t)
        for z in sc.zones:
            S.point_in_polygon(probe_x, probe_y, z.polygon)
    return one, (ConfigError, InputFileError)


def seeds() -> dict[str, bytes]:
    from pathlib import Path
    root = Path(__file__).resolve().parents[3] / "datasets" / "scenarios"
    own = b"""name: fuzz
duration_s: 10
backgrounds: [{image: bg.jpg}]
actors:
  - {folder: people, image: p.jpg, label: person, path: [[0, 0.2, 0.5, 0.4], [10, 0.8, 0.5, 0.5]]}
lighting: [[0, 300], [5, 2], [10, 300]]
audio: {cries: [{file: cry.wav, start_s: 3}]}
zones: [{name: door, polygon: [[0, 0], [0.5, 0], [0.5, 1]], kind: privacy}]
"""
    out = {"own": own, "no-lighting-key": own.replace(b"lighting: [[0, 300], [5, 2], [10, 300]]\n", b""),
           "bad-yaml": b"name: [unclosed\n", "not-mapping": b"- 1\n- 2\n"}
    for p in sorted(root.glob("*.yaml")):
        out[p.stem] = p.read_bytes()
    return out
