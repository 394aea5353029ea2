"""Cry audio data: I/O errors, resampling, recording-grouped split, bandwidth equalisation, augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from camlab.contract.audio_features import FeatureConfig, FeatureExtractor
from camlab.data.audio import (AudioDataConfig, Clip, WindowSampler, band_limit, build_index, load_audio, read_audio,
                               recording_group)
from camlab.errors import InputFileError

UUID = "0c8f14a9-6999-485b-97a2-913c1cbf099c"


def _tone(sr, seconds, f0=440.0, seed=0):
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_read_audio_errors_and_downmix(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(InputFileError, match="junk.wav: not a readable audio file"):
        read_audio(tmp_path / "junk.wav")
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(InputFileError, match="empty"):
        read_audio(tmp_path / "empty.wav")
    sf.write(tmp_path / "short.wav", np.zeros(100, np.float32), 16000)
    with pytest.raises(InputFileError, match="short.wav: audio is 0.006 s long"):
        read_audio(tmp_path / "short.wav")
    sf.write(tmp_path / "six.wav", np.zeros((16000, 6), np.float32), 16000)
    with pytest.raises(InputFileError, match="6 channels"):
        read_audio(tmp_path / "six.wav")
    with pytest.raises(InputFileError, match="not found"):
        read_audio(tmp_path / "missing.flac")
    st = np.stack([np.full(8000, 0.5, np.float32), np.full(8000, -0.25, np.float32)], axis=1)
    sf.write(tmp_path / "st.flac", st, 8000)
    x, sr = read_audio(tmp_path / "st.flac")
    assert sr == 8000 and x.shape == (8000,) and np.allclose(x, 0.125, atol=1e-4)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_load_audio_resamples_to_16k(tmp_path, sr):
    sf.write(tmp_path / "a.flac", _tone(sr, 1.0, 1000.0), sr)
    y = load_audio(tmp_path / "a.flac")
    assert abs(len(y) - 16000) <= 1
    spec = np.abs(np.fft.rfft(y[1000:15000] * np.hanning(14000)))
    peak_hz = np.argmax(spec) * 16000 / 14000
    assert abs(peak_hz - 1000) < 3


def test_recording_groups_from_names(tmp_path):
    p = tmp_path / "infant_cry" / "donateacry" / "hungry" / f"{UUID.upper()}-1430-1.0-f-26-hu.flac"
    assert recording_group(p) == ("donateacry", f"cry:{UUID}")
    assert recording_group(tmp_path / "household" / "esc50_noise" / "1-47819-B.ogg") == ("esc50", "esc50:1-47819")
    assert recording_group(tmp_path / "household" / "spoken_digits" / "two_fffcabd1_nohash_0.flac")[1] == \
        "digits:fffcabd1"


def test_shared_split_never_splits_a_recording(shared_data):
    idx = build_index(shared_data / "audio", val_fraction=0.25, seed=0)
    train_groups = {c.group for c in idx.train if c.start_s == 0 and c.end_s is None}
    val_groups = {c.group for c in idx.val if c.start_s == 0 and c.end_s is None}
    assert not train_groups & val_groups
    counts = idx.counts()
    assert counts["train"]["cry"] + counts["val"]["cry"] == 457
    assert 0.15 < counts["val"]["cry"] / 457 < 0.35
    # long background recordings are split in time: the val part starts where the train part ends
    longs = {c.path: c for c in idx.train if c.end_s is not None}
    assert len(longs) == 6
    for c in idx.val:
        if c.path in longs:
            assert c.start_s == longs[c.path].end_s
    # the split is a pure function of the seed
    assert build_index(shared_data / "audio", 0.25, 0).val == idx.val
    assert build_index(shared_data / "audio", 0.25, 1).val != idx.val


def test_bandwidth_is_equalised(tmp_path):
    """The same sound recorded at 8 kHz and at 44.1 kHz gives the same model input: bandwidth carries no label."""
    rng = np.random.default_rng(0)
    wide = (0.1 * rng.standard_normal(44100 * 2)).astype(np.float32)            # full-band noise, 44.1 kHz
    sf.write(tmp_path / "wide.flac", wide, 44100)
    narrow = load_audio(tmp_path / "wide.flac", band_limit_hz=None)
    import soxr
    sf.write(tmp_path / "narrow.flac", soxr.resample(wide, 44100, 8000), 8000)    # the same sound, 8 kHz
    fx = FeatureExtractor(FeatureConfig())
    n = fx.cfg.window_samples
    a = fx.model_input(load_audio(tmp_path / "wide.flac")[4000:4000 + n])
    b = fx.model_input(load_audio(tmp_path / "narrow.flac")[4000:4000 + n])
    full = fx.model_input(narrow[4000:4000 + n])
    # with the 8 kHz pass (training) and without it (device: fmax < 4 kHz) the inputs agree with the 8 kHz file
    assert np.abs(a - b).max() < 0.05
    assert np.abs(full - b).mean() < 0.02
    # a model can't separate 8 kHz from 44.1 kHz sources: even the best threshold on any single input cell of
    # noise windows from both sample rates is at chance
    wins_a, wins_b = [], []
    for s in range(24):
        x = (0.1 * np.random.default_rng(s).standard_normal(44100)).astype(np.float32)
        sf.write(tmp_path / "w.flac", x, 44100)
        sf.write(tmp_path / "n.flac", soxr.resample(x, 44100, 8000), 8000)
        wins_a.append(fx.model_input(load_audio(tmp_path / "w.flac", band_limit_hz=8000)[:n]).ravel())
        wins_b.append(fx.model_input(load_audio(tmp_path / "n.flac", band_limit_hz=8000)[:n]).ravel())
    diff = np.abs(np.stack(wins_a) - np.stack(wins_b))
    assert np.median(diff) < 0.01
    # the same noise, unequalised through a full-band front end, would be trivially separable
    wide_cfg = FeatureConfig(fmax=8000.0)
    fw = FeatureExtractor(wide_cfg)
    top_a = fw.log_mel(load_audio(tmp_path / "w.flac")[:16000])[-5:].mean()
    top_b = fw.log_mel(load_audio(tmp_path / "n.flac")[:16000])[-5:].mean()
    assert top_a - top_b > 5.0


def _synthetic_root(root, n_cry=6, n_noise=6):
    rng = np.random.default_rng(1)
    cry = root / "infant_cry" / "donateacry" / "hungry"
    house = root / "household" / "esc50_noise"
    cry.mkdir(parents=True)
    house.mkdir(parents=True)
    for i in range(n_cry):
        uid = f"{i:08x}-0000-4000-8000-{i:012x}"
        sf.write(cry / f"{uid}-14300-1.0-f-26-hu.flac", _tone(8000, 3.0, 400 + 40 * i, seed=i), 8000)
    for i in range(n_noise):
        sf.write(house / f"{i + 1}-{1000 + i}-A.flac", (0.1 * rng.standard_normal(22050 * 2)).astype(np.float32),
                 22050)
    return root


def test_sampler_windows_are_band_limited_and_labelled(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMLAB_CACHE", str(tmp_path / "cache"))
    root = _synthetic_root(tmp_path / "audio")
    cfg = AudioDataConfig(root=str(root), val_fraction=0.3)
    idx = build_index(cfg.root, cfg.val_fraction, cfg.split_seed)
    s = WindowSampler(idx.train + idx.val, cfg, FeatureConfig())
    waves, labels = s.windows(64, np.random.default_rng(0))
    assert waves.shape == (64, 15712) and set(np.unique(labels)) == {0.0, 1.0}
    assert np.abs(waves).max() <= 1.0
    spec = np.abs(np.fft.rfft(waves * np.hanning(waves.shape[1]), axis=1)) ** 2
    hf = spec[:, int(4200 * waves.shape[1] / 16000):].sum(axis=1) / spec.sum(axis=1)   # energy above 4.2 kHz
    assert hf.max() < 1e-3
    # both classes have the same bandwidth: the high-band energy ratio is at noise level for each
    assert hf[labels == 1].mean() < 1e-3 and hf[labels == 0].mean() < 1e-3
    rms = np.sqrt((waves ** 2).mean(axis=1))
    assert 10 ** (-95 / 20) < rms.min() and rms.max() < 10 ** (-7 / 20)
    x, y = s.features(8, np.random.default_rng(1))
    assert x.shape == (8, 1, 32, 96) and x.dtype == np.float32 and np.isfinite(x).all()


def test_band_limit_removes_high_band():
    x = _tone(16000, 1.0, 6000.0) + _tone(16000, 1.0, 1000.0, seed=1)
    y = band_limit(x, 16000, 8000)
    spec = np.abs(np.fft.rfft(y[2000:14000] * np.hanning(12000)))
    assert spec[int(6000 * 12000 / 16000)] < 1e-3 * spec[int(1000 * 12000 / 16000)]


def test_clip_is_hashable_and_split_dir(tmp_path, monkeypatch):
    from camlab.data.audio import write_split_dir

    monkeypatch.setenv("CAMLAB_CACHE", str(tmp_path / "cache"))
    root = _synthetic_root(tmp_path / "audio", n_cry=8, n_noise=8)
    (root / "household" / "esc50_noise" / "9-9-A.wav").write_bytes(b"not audio")
    assert build_index(root, 0.3, 0).counts()["skipped"] == 1
    cfg = AudioDataConfig(root=str(root), val_fraction=0.3)
    counts = write_split_dir("val", tmp_path / "val", cfg)
    idx = build_index(cfg.root, 0.3, 0)
    assert counts == {"cry": sum(c.label for c in idx.val), "nocry": sum(1 - c.label for c in idx.val)}
    assert len([p for p in (tmp_path / "val" / "cry").rglob("*") if p.is_symlink()]) == counts["cry"]
    assert {p.name for p in (tmp_path / "val" / "cry").iterdir()} == {"donateacry_hungry"}
    assert isinstance(hash(Clip(tmp_path, 1, "x", "g")), int)


def test_split_dir_drops_stale_files(tmp_path, monkeypatch):
    """A reused split folder holds exactly the split: a file left by an earlier split or recipe (a stray clip, an
    excerpt of another length under the same name) would silently change every metric computed on it."""
    import soundfile as sf

    from camlab.data.audio import write_split_dir

    monkeypatch.setenv("CAMLAB_CACHE", str(tmp_path / "cache"))
    root = _synthetic_root(tmp_path / "audio", n_cry=8, n_noise=8)
    cfg = AudioDataConfig(root=str(root), val_fraction=0.3)
    out = tmp_path / "val"
    counts = write_split_dir("val", out, cfg)
    before = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() or p.is_symlink())
    sf.write(str(out / "nocry" / "stale.wav"), np.zeros(8000, np.float32), 8000)
    victim = next(p for p in (out / "cry").rglob("*") if p.is_symlink())
    victim.unlink()
    sf.write(str(victim), np.zeros(800, np.float32), 8000)   # a plain file where the split has a link
    assert write_split_dir("val", out, cfg) == counts
    after = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() or p.is_symlink())
    assert after == before
    assert not (out / "nocry" / "stale.wav").exists()
    assert all(p.is_symlink() or p.suffix == ".flac" for p in out.rglob("*") if p.is_file())


def test_hard_negative_crops_come_from_the_mined_spots(tmp_path, monkeypatch):
    from dataclasses import replace

    monkeypatch.setenv("CAMLAB_CACHE", str(tmp_path / "cache"))
    root = _synthetic_root(tmp_path / "audio")
    cfg = AudioDataConfig(root=str(root), val_fraction=0.3, positive_fraction=0.05)
    cfg = replace(cfg, augment=replace(cfg.augment, p_hard=1.0, p_silence=0.0, p_neg_mix=0.0, p_reverb=0.0))
    idx = build_index(cfg.root, cfg.val_fraction, cfg.split_seed)
    s = WindowSampler(idx.train, cfg, FeatureConfig())
    # mark one spot of negative 0 with a 1 kHz tone; with p_hard = 1 every negative window is cut around it
    spot = s.rate // 2
    s.neg[0] = s.neg[0].copy()
    s.neg[0][:] = 0.0
    s.neg[0][spot:spot + s.n] = np.sin(2 * np.pi * 1000 * np.arange(s.n) / s.rate).astype(np.float32)
    s.set_hard_negatives([(0, spot), (99, 0)])      # out-of-range indices are dropped
    assert s.hard == [(0, spot)]
    rng = np.random.default_rng(0)
    negs = [s._window_8k(0, rng) for _ in range(20)]
    for w in negs:   # the tone fills most of every window (jitter <= 1/8 s)
        spec = np.abs(np.fft.rfft(w)) ** 2
        f = np.fft.rfftfreq(len(w), 1 / s.rate)
        assert spec[np.abs(f - 1000) < 20].sum() / spec.sum() > 0.8
    with pytest.raises(ValueError, match="p_hard"):
        replace(cfg.augment, p_hard=1.5)


def test_speed_perturbation_scales_pitch_and_hard_windows_are_flagged(tmp_path, monkeypatch):
    """Speed perturbation plays a window ``speed`` times faster (a 1 kHz hard spot comes out at 1.2 kHz at speed
    1.2, still a full window); ``last_hard`` marks exactly the windows cut around mined hard spots."""
    from dataclasses import replace

    monkeypatch.setenv("CAMLAB_CACHE", str(tmp_path / "cache"))
    root = _synthetic_root(tmp_path / "audio")
    cfg = AudioDataConfig(root=str(root), val_fraction=0.3, positive_fraction=0.05)
    cfg = replace(cfg, augment=replace(cfg.augment, p_hard=1.0, p_silence=0.0, p_neg_mix=0.0, p_reverb=0.0,
                                       p_speed=1.0, speed=(1.2, 1.2)))
    idx = build_index(cfg.root, cfg.val_fraction, cfg.split_seed)
    s = WindowSampler(idx.train, cfg, FeatureConfig())
    spot = s.rate // 2
    s.neg[0] = np.zeros(3 * s.n, np.float32)
    s.neg[0][spot:spot + 2 * s.n] = np.sin(2 * np.pi * 1000 * np.arange(2 * s.n) / s.rate).astype(np.float32)
    s.set_hard_negatives([(0, spot)])
    rng = np.random.default_rng(0)
    f = np.fft.rfftfreq(s.n, 1 / s.rate)
    for _ in range(5):
        w = s._window_8k(0, rng)
        assert w.shape == (s.n,) and s._last_hard
        spec = np.abs(np.fft.rfft(w * np.hanning(s.n))) ** 2
        assert abs(f[np.argmax(spec)] - 1200.0) < 10.0
    _, labels = s.windows(40, rng)
    assert s.last_hard.shape == (40,) and np.array_equal(s.last_hard, labels == 0)   # p_hard = 1: every negative
    s.set_hard_negatives([])
    s.windows(10, rng)
    assert not s.last_hard.any()
    with pytest.raises(ValueError, match="speed"):
        replace(cfg.augment, speed=(0.3, 1.0))


def test_synthetic_confusers_are_tonal_band_limited_negatives(tmp_path, monkeypatch):
    """Sirens and bells: tonal (a few spectral lines carry most energy), nothing above the band limit's Nyquist,
    a bell decays between strikes; with p_synth = 1 every negative window is one (cries untouched)."""
    from dataclasses import replace

    from camlab.data.audio import synthetic_bell, synthetic_siren

    rate, n = 8000, 8800
    rng = np.random.default_rng(3)
    for make in (synthetic_siren, synthetic_bell):
        for _ in range(4):
            x = make(n, rate, rng).astype(np.float64)
            assert x.shape == (n,) and np.isfinite(x).all() and np.abs(x).max() > 0.05
            spec = np.abs(np.fft.rfft(x * np.hanning(n))) ** 2
            f = np.fft.rfftfreq(n, 1 / rate)
            assert spec[f > 0.48 * rate].sum() < 5e-3 * spec.sum()   # window leakage only
            top = np.sort(spec)[::-1]
            assert top[: n // 40].sum() > 0.8 * spec.sum()      # 2.5 % of the bins hold > 80 % of the energy
    monkeypatch.setenv("CAMLAB_CACHE", str(tmp_path / "cache"))
    root = _synthetic_root(tmp_path / "audio")
    cfg = AudioDataConfig(root=str(root), val_fraction=0.3, positive_fraction=0.5)
    cfg = replace(cfg, augment=replace(cfg.augment, p_synth=1.0, p_silence=0.0))
    s = WindowSampler(build_index(cfg.root, 0.3, 0).train, cfg, FeatureConfig())
    waves, labels = s.windows(24, np.random.default_rng(0))
    assert set(np.unique(labels)) == {0.0, 1.0} and np.isfinite(waves).all() and not s.last_hard.any()
    with pytest.raises(ValueError, match="p_synth"):
        replace(cfg.augment, p_synth=-0.1)


def _asterisk_like(root, voices=("en_US_f_A", "fr_CA_f_J"), prompts=("1", "2", "hello", "bye")):
    """A tiny tree shaped like the Debian Asterisk packages: sounds/<voice>/[digits/]<prompt>.wav and moh/*.wav."""
    rng = np.random.default_rng(3)
    for v in voices:
        for i, name in enumerate(prompts):
            sub = root / "asterisk" / "sounds" / v / ("digits" if name.isdigit() else "")
            sub.mkdir(parents=True, exist_ok=True)
            sf.write(sub / f"{name}.wav", _tone(8000, 0.8, 200 + 30 * i, seed=i), 8000)
    moh = root / "asterisk" / "moh"
    moh.mkdir(parents=True)
    sf.write(moh / "track.wav", (0.1 * rng.standard_normal(8000 * 40)).astype(np.float32), 8000)
    return [str(root / "asterisk" / "sounds"), str(moh)]


def test_extra_negatives_are_grouped_split_and_laid_out_by_folder(tmp_path, monkeypatch):
    from camlab.data.audio import group_folder, index_for, write_split_dir

    monkeypatch.setenv("CAMLAB_CACHE", str(tmp_path / "cache"))
    root = _synthetic_root(tmp_path / "audio", n_cry=8, n_noise=4)
    extra = _asterisk_like(tmp_path / "sys")
    p = tmp_path / "sys" / "asterisk" / "sounds" / "en_US_f_A" / "digits" / "1.wav"
    assert recording_group(p) == ("asterisk", "asterisk:en_US_f_A/digits/1")
    assert recording_group(tmp_path / "sys" / "asterisk" / "moh" / "track.wav") == ("moh", "moh:track")
    cfg = AudioDataConfig(root=str(root), val_fraction=0.5, extra_negatives=tuple(extra))
    idx = index_for(cfg)
    allc = idx.train + idx.val
    assert sum(c.source == "asterisk" for c in allc) == 8
    moh = [c for c in allc if c.source == "moh"]   # 40 s track: split in time, one part per side
    assert len(moh) == 2 and {c in idx.val for c in moh} == {True, False}
    assert {group_folder(c) for c in allc if c.source == "asterisk"} == {"asterisk_en_US_f_A", "asterisk_fr_CA_f_J"}
    for split in ("train", "val"):
        counts = write_split_dir(split, tmp_path / split, cfg)
        laid = [q for q in (tmp_path / split / "nocry").rglob("*") if q.is_file()]
        assert len(laid) == counts["nocry"]   # same prompt names in two voices never collide
    with pytest.raises(InputFileError, match="make sysdeps"):
        build_index(root, 0.5, 0, extra_negatives=(str(tmp_path / "nowhere"),))


def test_music_tracks_are_split_whole_not_in_time(tmp_path, monkeypatch):
    """A music track's two halves are one piece: validation music must come from tracks training never heard."""
    from camlab.data.audio import group_folder

    monkeypatch.setenv("CAMLAB_CACHE", str(tmp_path / "cache"))
    root = _synthetic_root(tmp_path / "audio", n_cry=8, n_noise=4)
    music = tmp_path / "usr" / "share" / "games" / "wesnoth" / "1.16" / "data" / "core" / "music"
    music.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(8):
        sf.write(music / f"track{i}.ogg", (0.1 * rng.standard_normal(8000 * 40)).astype(np.float32), 8000)
    assert recording_group(music / "track0.ogg") == ("music", "music:track0")
    idx = build_index(root, 0.5, 0, extra_negatives=(str(music),))
    train = [c for c in idx.train if c.source == "music"]
    val = [c for c in idx.val if c.source == "music"]
    assert len(train) + len(val) == 8 and train and val
    assert all(c.start_s == 0.0 and c.end_s is None for c in train + val)
    assert not {c.group for c in train} & {c.group for c in val}
    assert group_folder(val[0]) == "music"


def test_source_balanced_negative_weights():
    from camlab.data.audio import negative_weights

    lengths = [100] * 98 + [10000, 10000]
    sources = ["asterisk"] * 98 + ["esc50", "esc50"]
    w = negative_weights(lengths, sources, balance_sources=True)
    assert np.isclose(w[:98].sum(), 0.5) and np.isclose(w[98:].sum(), 0.5)
    w0 = negative_weights(lengths, sources)
    assert w0[:98].sum() > 0.8   # without balancing the many short prompts dominate


def test_index_skips_empty_multichannel_and_too_short_files_with_a_reason(tmp_path):
    """Packaged data holds an empty prompt (asterisk ru 'is.wav': 0 samples): the index lists it as skipped instead
    of handing it to training, where reading it would stop the run after the last epoch."""
    root = _synthetic_root(tmp_path / "audio")
    house = root / "household" / "esc50_noise"
    sf.write(house / "9-1-A.wav", np.zeros((0, 1), np.float32), 8000)
    sf.write(house / "9-2-A.wav", np.zeros((8000, 6), np.float32), 8000)
    sf.write(house / "9-3-A.wav", np.zeros(100, np.float32), 8000)
    idx = build_index(root, 0.3, 0)
    names = {c.path.name for c in idx.train + idx.val}
    assert not names & {"9-1-A.wav", "9-2-A.wav", "9-3-A.wav"}
    reasons = "\n".join(idx.skipped)
    assert "9-1-A.wav: audio file is empty" in reasons and "9-2-A.wav: audio has 6 channels" in reasons
    assert "9-3-A.wav: audio is 0.013 s long" in reasons


def test_held_out_folders_come_from_the_data_root_and_the_setting(tmp_path, monkeypatch):
    """Whole sources no recipe trains on: every source folder under ``<audio root>/held_out`` and under each folder of
    ``CAMLAB_CRY_HELD_OUT``, in the layout of ``camlab eval cry --data`` (cry/ and nocry/); a wrong layout or a
    setting naming no folder is refused with the path named."""
    import pytest

    from camlab.data.audio import held_out_folders
    from camlab.errors import InputFileError

    root = tmp_path / "audio"
    for sub in ("cry/a", "nocry/baby_laugh"):
        (root / "held_out" / "laughs_src" / sub).mkdir(parents=True)
    extra = tmp_path / "extra"
    (extra / "other_src" / "cry").mkdir(parents=True)
    (extra / "other_src" / "nocry").mkdir(parents=True)
    monkeypatch.delenv("CAMLAB_CRY_HELD_OUT", raising=False)
    assert held_out_folders(root) == {"laughs_src": root / "held_out" / "laughs_src"}
    monkeypatch.setenv("CAMLAB_CRY_HELD_OUT", str(extra))
    assert held_out_folders(root) == {"laughs_src": root / "held_out" / "laughs_src", "other_src": extra / "other_src"}
    assert held_out_folders(tmp_path / "none") == {"other_src": extra / "other_src"}
    (extra / "bad_src").mkdir()
    with pytest.raises(InputFileError, match="bad_src.*cry/.*nocry/"):
        held_out_folders(root)
    monkeypatch.setenv("CAMLAB_CRY_HELD_OUT", str(tmp_path / "missing"))
    with pytest.raises(InputFileError, match="CAMLAB_CRY_HELD_OUT.*missing"):
        held_out_folders(root)


def test_split_config_keeps_only_what_decides_the_split():
    """From a recipe's data config or from the dict a checkpoint stores, the same split fields and nothing else
    (the bench and the release selection rebuild the validation split this one way)."""
    from dataclasses import asdict

    from camlab.data.audio import SPLIT_FIELDS, AudioDataConfig, split_config

    cfg = AudioDataConfig(val_fraction=0.3, split_seed=4, extra_negatives=("/x",), positive_fraction=0.7)
    a, b = split_config(cfg), split_config(asdict(cfg))
    assert a == b
    assert all(getattr(a, k) == getattr(cfg, k) for k in SPLIT_FIELDS)
    assert a.positive_fraction == AudioDataConfig().positive_fraction != cfg.positive_fraction
