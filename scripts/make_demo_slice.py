"""Build the embedded demo slice under datasets/demo from ../shared/data (run once by a maintainer; output committed).

Only permissively licensed sets (see ../shared/data/SOURCES.md): persons_cctv, vehicles_openimages,
vehicles_trafficcam (CC BY 4.0), oxford_pets_more (CC BY-SA 4.0), Donate-a-Cry (ODbL/DbCL), Speech Commands
(CC BY 4.0), the DSC_1339 raw crop (MIT). Not ESC-50 (CC BY-NC), not COCO images (mixed Flickr licences).
The slice mirrors the shared layout so the same loaders read it (settings.data_root() falls back to it).
Images are downscaled to <= 384 px (YOLO labels are normalized, so they stay valid); long audio is cut to 20 s.
"""
from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
DST = ROOT / "datasets" / "demo"
IMAGE_SETS = {  # folder/split: number of images
    "persons_cctv/train": 70, "vehicles_openimages/train": 40, "vehicles_openimages/valid": 10,
    "vehicles_trafficcam/train": 20, "vehicles_trafficcam/valid": 6, "oxford_pets_more/train": 50,
}
MAX_SIDE = 384


def copy_images(rng: random.Random) -> None:
    for rel, count in IMAGE_SETS.items():
        src, dst = SRC / "images" / rel, DST / "images" / rel
        (dst / "images").mkdir(parents=True, exist_ok=True)
        (dst / "labels").mkdir(parents=True, exist_ok=True)
        shutil.copy(src / "classes.txt", dst / "classes.txt")
        images = sorted(p for p in (src / "images").iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        for img in rng.sample(images, min(count, len(images))):
            label = src / "labels" / (img.stem + ".txt")
            with Image.open(img) as im:
                im = im.convert("RGB")
                im.thumbnail((MAX_SIDE, MAX_SIDE))
                im.save(dst / "images" / (img.stem + ".jpg"), quality=85)
            if label.is_file():
                shutil.copy(label, dst / "labels" / label.name)


def copy_audio(rng: random.Random) -> None:
    cry_src = SRC / "audio" / "infant_cry" / "donateacry"
    for reason_dir in sorted(cry_src.iterdir()):
        files = sorted(reason_dir.glob("*.flac"))
        out = DST / "audio" / "infant_cry" / "donateacry" / reason_dir.name
        out.mkdir(parents=True, exist_ok=True)
        for f in rng.sample(files, min(12, len(files))):
            shutil.copy(f, out / f.name)
    bg_src = SRC / "audio" / "household" / "speech_commands_background"
    bg_dst = DST / "audio" / "household" / "speech_commands_background"
    bg_dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(bg_src.glob("*.flac")):
        audio, sr = sf.read(f, dtype="float32")
        sf.write(bg_dst / f.name, audio[: 20 * sr], sr, format="FLAC")
    digits = sorted((SRC / "audio" / "household" / "spoken_digits").glob("*.flac"))
    d_dst = DST / "audio" / "household" / "spoken_digits"
    d_dst.mkdir(parents=True, exist_ok=True)
    for f in rng.sample(digits, min(12, len(digits))):
        shutil.copy(f, d_dst / f.name)


def copy_scenario_holdout(rng: random.Random) -> None:
    """Images and clips for the demo scenario that no demo training set holds (actors, cry, talk-back), and the
    DSC_1339 raw crop rendered once as the scenario's background (a garden)."""
    dst = DST / "images" / "scenario_holdout"
    for sub in ("images", "labels"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
    (dst / "classes.txt").write_text("person\ncat\ndog\n")
    picks = {"persons_cctv/train": (0, 3), "oxford_pets_more/train": (None, 3)}
    for rel, (cls_id, count) in picks.items():
        src = SRC / "images" / rel
        taken = {p.stem for p in (DST / "images" / rel / "images").iterdir()}
        names = [n.strip() for n in (src / "classes.txt").read_text().splitlines() if n.strip()]
        pool = sorted(p for p in (src / "images").iterdir() if p.stem not in taken)
        for img in rng.sample(pool, count):
            lines = (src / "labels" / (img.stem + ".txt")).read_text().split("\n")
            out = []
            for ln in lines:
                parts = ln.split()
                if len(parts) == 5:
                    name = names[int(parts[0])]
                    out.append(" ".join([str(["person", "cat", "dog"].index(name))] + parts[1:]))
            with Image.open(img) as im:
                im = im.convert("RGB")
                im.thumbnail((MAX_SIDE, MAX_SIDE))
                im.save(dst / "images" / (img.stem + ".jpg"), quality=85)
            (dst / "labels" / (img.stem + ".txt")).write_text("\n".join(out) + "\n")
    audio = DST / "audio" / "scenario_holdout"
    audio.mkdir(parents=True, exist_ok=True)
    taken_cries = {p.name.split("-1")[0] for p in (DST / "audio" / "infant_cry").rglob("*.flac")}
    cries = sorted(p for p in (SRC / "audio" / "infant_cry" / "donateacry").rglob("*.flac")
                   if p.name.split("-1")[0] not in taken_cries)
    shutil.copy(rng.choice(cries), audio / "cry.flac")
    digits = sorted(p for p in (SRC / "audio" / "household" / "spoken_digits").glob("*.flac")
                    if not (DST / "audio" / "household" / "spoken_digits" / p.name).exists())
    shutil.copy(rng.choice(digits), audio / "talkback.flac")


def render_background() -> None:
    from camlab.isp.pipeline import Pipeline, load_tuning
    from camlab.sensor.raw_io import read_headerless
    import dataclasses

    frame = read_headerless(SRC / "raw" / "DSC_1339_768x512_rggb.raw", width=768, height=512, bits=14,
                            pattern="RGGB")
    frame = dataclasses.replace(frame, black_level=600.0, white_level=15520.0)
    res = Pipeline(load_tuning("sc3336_day")).run(frame, rgb=True)
    rgb = (np.clip(res.rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    out = DST / "images" / "scenario_holdout" / "background_garden.jpg"
    Image.fromarray(rgb).resize((768, 432)).save(out, quality=90)


def copy_raw() -> None:
    (DST / "raw").mkdir(parents=True, exist_ok=True)
    for name in ("DSC_1339_768x512_rggb.raw",):
        shutil.copy(SRC / "raw" / name, DST / "raw" / name)


def main() -> None:
    for sub in ("images", "audio", "raw"):  # README.md and SOURCES.md are kept
        if (DST / sub).exists():
            shutil.rmtree(DST / sub)
    rng = random.Random(20261122)
    copy_images(rng)
    copy_audio(rng)
    copy_raw()
    copy_scenario_holdout(rng)
    render_background()
    size = sum(p.stat().st_size for p in DST.rglob("*") if p.is_file())
    print(f"demo slice: {size / 1e6:.1f} MB in {DST}")
    np.testing.assert_array_less(size, 15e6)


if __name__ == "__main__":
    main()
