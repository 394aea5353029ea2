"""Media: H.265/H.264 packets decode back to the frames, Opus round trip, AEC echo return loss enhancement."""
from __future__ import annotations

import numpy as np
import pytest

from device_sim.media.encoder import StreamConfig, VideoEncoder, jpeg_snapshot


def _nv12(w, h, k):
    yy, xx = np.mgrid[0:h, 0:w]
    y = (16 + (xx * 3 + yy * 2 + 4 * k) % 200).astype(np.uint8)
    uv = np.full((h // 2, w), 128, np.uint8)
    uv[:, 0::2] = (96 + (xx[: h // 2, 0::2] % 64)).astype(np.uint8)
    return np.vstack([y, uv])


@pytest.mark.parametrize("codec", ["hevc", "h264"])
def test_encoder_packets_decode_to_the_same_frames(codec):
    import av
    w, h, n = 160, 96, 12
    enc = VideoEncoder(StreamConfig("main", codec, w, h, 20.0, bitrate=2_000_000, gop=6))
    frames = [_nv12(w, h, k) for k in range(n)]
    pkts = []
    for k, f in enumerate(frames):
        pkts += enc.encode(f, capture_s=1.0 + k / 20)
    pkts += enc.flush()
    assert len(pkts) == n                                  # zerolatency: one access unit per frame
    assert [p.pts_s for p in pkts] == pytest.approx([1.0 + k / 20 for k in range(n)])
    assert [p.keyframe for p in pkts] == [k % 6 == 0 for k in range(n)]
    dec = av.CodecContext.create(codec, "r")
    out = []
    for p in pkts:
        out += dec.decode(av.Packet(p.data))
    out += dec.decode(None)
    assert len(out) == n
    for f, ref in zip(out, frames):
        y = f.to_ndarray()[:h]                              # yuv420p planes, Y first
        mse = np.mean((y.astype(np.float64) - ref[:h].astype(np.float64)) ** 2)
        assert 10 * np.log10(255 ** 2 / max(mse, 1e-9)) > 30.0
    with pytest.raises(ValueError, match="NV12 frame must be"):
        enc.encode(np.zeros((10, 10), np.uint8), 0.0)


def test_jpeg_snapshot_is_a_decodable_jpeg():
    import cv2
    data = jpeg_snapshot(_nv12(64, 48, 0))
    assert data[:2] == b"\xff\xd8"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (48, 64, 3)


def test_opus_round_trip_keeps_a_tone():
    import av
    from device_sim.media.audio import OpusEncoder
    enc = OpusEncoder(32000)
    t = np.arange(16000) / 16000
    pcm = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    pkts = []
    for i in range(0, pcm.size, 160):
        pkts += enc.encode(pcm[i:i + 160], i / 16000)
    pkts += enc.flush(1.0)
    assert 45 <= len(pkts) <= 52 and all(p.stream == "audio" for p in pkts)
    dec = av.CodecContext.create("libopus", "r")
    dec.sample_rate, dec.layout = 16000, "mono"
    frames = [f for p in pkts for f in dec.decode(av.Packet(p.data))]
    sr = frames[0].sample_rate                              # libopus decodes at 48 kHz unless told otherwise
    out = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float64)
    seg = out[sr // 4: 3 * sr // 4]
    spec = np.abs(np.fft.rfft(seg))
    freqs = np.fft.rfftfreq(seg.size, 1 / sr)
    assert abs(freqs[np.argmax(spec)] - 440) < 5


def test_aec_removes_speaker_echo_and_keeps_near_end():
    from device_sim.hal.speaker import SpeakerHAL
    from device_sim.media.audio import AudioChain, AudioChainConfig, erle_db
    rng = np.random.default_rng(0)
    n = 16000 * 4
    far = rng.standard_normal(n) * np.repeat(rng.uniform(0.05, 0.3, n // 1600), 1600)
    sp = SpeakerHAL(seed=0)
    emitted = sp.play(far)
    echo = sp.echo(emitted)
    t = np.arange(n) / 16000
    near = np.where(t > 3.0, 0.1 * np.sin(2 * np.pi * 300 * t), 0.0)
    mic = (np.clip(echo + near, -1, 0.99) * 32768).astype(np.int16)
    ref = (np.clip(emitted, -1, 0.99) * 32768).astype(np.int16)
    chain = AudioChain(AudioChainConfig(agc_target_dbfs=0))
    aec = np.concatenate([chain.process(mic[i:i + 160], ref[i:i + 160])[0] for i in range(0, n, 160)])
    erle = erle_db(mic[32000:48000], aec[32000:48000])      # far-end only, after 2 s of adaptation
    assert erle > 15.0
    # double talk: the near-end tone survives the canceller
    seg = aec[52000:64000].astype(np.float64) / 32768
    spec = np.abs(np.fft.rfft(seg))
    assert abs(np.fft.rfftfreq(seg.size, 1 / 16000)[np.argmax(spec)] - 300) < 5
    bypass = AudioChain(AudioChainConfig(aec=False, agc_target_dbfs=0))
    raw = np.concatenate([bypass.process(mic[i:i + 160], ref[i:i + 160])[0] for i in range(0, n, 160)])
    assert erle_db(mic[32000:48000], raw[32000:48000]) == pytest.approx(0.0, abs=0.01)
