"""Audio capture chain: acoustic echo cancellation -> noise suppression -> AGC -> Opus, as on the camera's DSP.

- AEC: libspeexdsp's MDF echo canceller (Soo & Pang, "Multidelay block frequency domain adaptive filter", IEEE
  TASSP 38(2), 1990; Valin, "On adjusting the learning rate in frequency domain echo cancellation with double-talk",
  IEEE TASLP 15(3), 2007) through the ``speexdsp-aec`` ctypes binding; the far-end reference is the speaker
  loopback.
- NS + AGC: WebRTC's audio processing module (noise suppressor and AGC) through ``webrtc-noise-gain``.
- Opus (RFC 6716) through PyAV's libopus encoder, 20 ms frames, VoIP application, packets as
  :class:`device_sim.media.packets.EncodedPacket`.

The cleaned 16 kHz signal (after AEC + NS + AGC) is what the recording and the cry detector both receive.
ERLE (ITU-T G.168 §3.8): ``10 log10(E[d^2] / E[e^2])`` over far-end-only periods, d = microphone, e = AEC output.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device_sim.media.packets import EncodedPacket, StreamInfo

SAMPLE_RATE = 16000
BLOCK = 160  # 10 ms


@dataclass(frozen=True)
class AudioChainConfig:
    aec: bool = True
    aec_tail_ms: int = 200
    noise_suppression_level: int = 2     # WebRTC NS level 0..4
    agc_target_dbfs: int = 3             # WebRTC AGC target level (dB below full scale), 0 disables AGC
    opus_bitrate: int = 24000


class AudioChain:
    """Processes 10 ms int16 blocks: ``process(mic, ref) -> cleaned int16`` and Opus packets via ``encode``."""

    def __init__(self, cfg: AudioChainConfig = AudioChainConfig()):
        from speexdsp_aec import SpeexAec
        from webrtc_noise_gain import AudioProcessor
        self.cfg = cfg
        self.aec = SpeexAec(sample_rate=SAMPLE_RATE, frame_ms=10, filter_tail_ms=cfg.aec_tail_ms) if cfg.aec else None
        self.apm = AudioProcessor(cfg.agc_target_dbfs, cfg.noise_suppression_level)
        self.opus = OpusEncoder(cfg.opus_bitrate)
        self.speech_blocks = 0

    def prime(self, mic_blocks, ref_blocks) -> int:
        """Boot chime: adapt the echo canceller on a known far-end signal before streaming (outputs dropped).

        Cameras play a start-up sound; with a fixed echo path the adapted filter then holds for the session.
        """
        n = 0
        if self.aec is not None:
            for m, r in zip(mic_blocks, ref_blocks):
                self.aec.process(m, r)
                n += 1
        return n

    def process(self, mic: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One 10 ms block -> (AEC output, fully cleaned output), both int16."""
        if self.aec is not None:
            out = self.aec.process(mic, ref)
            echo_free = np.frombuffer(out, np.int16) if len(out) == BLOCK * 2 else mic
        else:
            echo_free = mic
        res = self.apm.Process10ms(echo_free.tobytes())
        if res.is_speech:
            self.speech_blocks += 1
        return echo_free, np.frombuffer(res.audio, np.int16)


class OpusEncoder:
    """PyAV libopus at 16 kHz mono; input int16 blocks of any length, output EncodedPacket per 20 ms frame."""

    def __init__(self, bitrate: int = 24000):
        import av
        self.codec = av.CodecContext.create("libopus", "w")
        self.codec.sample_rate = SAMPLE_RATE
        self.codec.layout = "mono"
        self.codec.format = "s16"
        self.codec.bit_rate = bitrate
        self.codec.options = {"application": "voip", "frame_duration": "20"}
        self.codec.open()
        self.info = StreamInfo(name="audio", codec="opus", sample_rate=SAMPLE_RATE, channels=1,
                               extradata=bytes(self.codec.extradata or b""))
        self._pts = 0

    def encode(self, pcm: np.ndarray, t0_s: float) -> list[EncodedPacket]:
        import av
        frame = av.AudioFrame.from_ndarray(np.asarray(pcm, np.int16).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        self._pts += pcm.size
        return [self._packet(p, t0_s) for p in self.codec.encode(frame)]

    def flush(self, t0_s: float) -> list[EncodedPacket]:
        return [self._packet(p, t0_s) for p in self.codec.encode(None)]

    def _packet(self, p, t0_s: float) -> EncodedPacket:
        pts = float(p.pts) / SAMPLE_RATE if p.pts is not None else t0_s
        dur = float(p.duration or 0) / SAMPLE_RATE
        return EncodedPacket("audio", pts, bytes(p), keyframe=True, duration_s=dur)


def erle_db(mic: np.ndarray, aec_out: np.ndarray) -> float:
    """Echo return loss enhancement over a far-end-only segment (dB)."""
    d = np.asarray(mic, np.float64)
    e = np.asarray(aec_out, np.float64)
    return float(10 * np.log10((np.mean(d ** 2) + 1e-12) / (np.mean(e ** 2) + 1e-12)))
