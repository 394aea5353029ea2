"""The contract's log-mel / MFCC against librosa, streaming windows, alarm logic, manifest round trip.

Tolerances: log-mel within 1e-4 (natural log, absolute) of ``ln(librosa mel + offset)``; MFCC within 1e-2 dB-units
(float32 DCT of dB values around -60..+20); filter banks within 1e-9 absolute.
"""
from __future__ import annotations

import numpy as np
import pytest

from camlab.contract.audio_features import (CryAlarm, FeatureConfig, FeatureExtractor, StreamingWindower,
                                            mel_filterbank, sliding_windows)
from camlab.errors import InputFileError

librosa = pytest.importorskip("librosa")


def _signal(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t * (1 + t)) + 0.05 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("htk,norm,fmin,fmax,n_mels", [(False, "slaney", 50, 3800, 40), (True, None, 125, 7500, 64),
                                                       (False, None, 0, 8000, 23), (True, "slaney", 300, 4000, 17)])
def test_filterbank_matches_librosa(htk, norm, fmin, fmax, n_mels):
    ours = mel_filterbank(16000, 512, n_mels, fmin, fmax, htk=htk, norm=norm)
    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-9, rtol=1e-5)


@pytest.mark.parametrize("n", [16000, 16001, 8123, 512])
@pytest.mark.parametrize("power", [2.0, 1.0])
def test_log_mel_matches_librosa(n, power):
    cfg = FeatureConfig(power=power, n_mels=40)
    y = _signal(n, seed=n)
    ref = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=160, win_length=400, window="hann",
                                         center=False, power=power, n_mels=40, fmin=50, fmax=3800)
    ours = FeatureExtractor(cfg).log_mel(y)
    assert ours.shape == ref.shape == (40, 1 + (n - 512) // 160)
    np.testing.assert_allclose(ours, np.log(ref + cfg.log_offset), atol=1e-4)


def test_mfcc_matches_librosa():
    cfg = FeatureConfig(kind="mfcc", n_mfcc=13, n_mels=40)
    y = _signal(15712, seed=3)
    mel = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=160, win_length=400, center=False,
                                         power=2.0, n_mels=40, fmin=50, fmax=3800)
    ref = librosa.feature.mfcc(S=10 * np.log10(mel + cfg.log_offset), n_mfcc=13)
    fx = FeatureExtractor(cfg)
    np.testing.assert_allclose(fx.mfcc(y), ref, atol=1e-2)
    assert fx.batch(y[None]).shape == (1, 1, 13, cfg.n_frames)


def test_model_input_normalised_and_batch_equal():
    cfg = FeatureConfig(mean=-5.0, std=2.0)
    fx = FeatureExtractor(cfg)
    w = np.stack([_signal(cfg.window_samples, s) for s in range(3)])
    single = np.concatenate([fx.model_input(x) for x in w])
    assert single.shape == (3, 1, 32, 96) and cfg.window_samples == 15712
    np.testing.assert_allclose(single[0, 0], (fx.log_mel(w[0]) + 5.0) / 2.0, atol=1e-5)
    np.testing.assert_allclose(fx.batch(w), single, atol=1e-4)
    np.testing.assert_allclose((fx.source_input(w[1]) - cfg.mean) / cfg.std, single[1:2], atol=1e-5)
    with pytest.raises(ValueError, match="15712 samples"):
        fx.model_input(w[0, :100])


def test_sliding_windows_and_streaming_agree():
    x = np.arange(40000, dtype=np.float32)
    wins, ends = sliding_windows(x, 16000, 8000)
    assert wins.shape == (4, 16000) and list(ends) == [16000, 24000, 32000, 40000]
    assert wins[1, 0] == 8000
    sw = StreamingWindower(16000, 8000)
    got = []
    for block in np.array_split(x, 37):
        got += list(sw.push(block))
    assert [e for _, e in got] == list(ends)
    np.testing.assert_array_equal(np.stack([w for w, _ in got]), wins)
    short, e = sliding_windows(x[:1000], 16000, 8000)
    assert short.shape == (1, 16000) and e[0] == 1000 and short[0, 1000:].max() == 0


def test_alarm_k_of_n_and_refractory():
    a = CryAlarm(threshold=0.5, k=2, n=3, refractory_s=2.0, hop_s=0.5)
    p = [0.9, 0.1, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.1]
    t = [0.5 * (i + 2) for i in range(len(p))]
    # 2 of the last 3 at t=2.0; quiet until 4.0; window history restarts after an alarm -> next at 4.0
    assert a.run(p, t) == [2.0, 4.0]
    assert a.clip_score([0.9, 0.1, 0.8]) == pytest.approx(0.8)
    assert a.clip_score([0.9]) == pytest.approx(0.9)
    assert CryAlarm(k=2, n=2).clip_score([0.9, 0.1, 0.95, 0.2]) == pytest.approx(0.2)


def test_manifest_roundtrip_and_errors():
    cfg = FeatureConfig(n_mels=24, fmax=3500.0, window_s=1.0)
    block = cfg.to_manifest()
    assert block["n_frames"] == 97 and block["normalisation"]["mean"] == cfg.mean
    assert FeatureConfig.from_manifest(block) == cfg
    with pytest.raises(InputFileError, match="n_frames"):
        FeatureConfig.from_manifest({**block, "n_frames": 5})
    with pytest.raises(InputFileError, match="fmax"):
        FeatureConfig.from_manifest({**block, "fmax": 9000.0})
