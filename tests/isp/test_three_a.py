"""3A: AE convergence and limits, AWB zone statistics, the day/night controller's no-flapping property."""
from __future__ import annotations

import numpy as np
import pytest

from camlab.isp.stages import cfa_tile
from camlab.isp.three_a.ae import AeParams, AeState, ae_update, split_exposure
from camlab.isp.three_a.awb_stats import zone_stats
from camlab.isp.three_a.daynight import DayNightController, DayNightParams


def _measure(scene: float, s: AeState) -> float:
    """A linear sensor: mean luma = scene radiance x exposure x gains, clipped at white."""
    return min(1.0, scene * s.exposure_s * s.analog_gain * s.digital_gain)


@pytest.mark.parametrize("scene", [0.5, 20.0, 400.0])
def test_ae_converges_on_target(scene):
    p = AeParams(target=0.18, speed=0.5, tolerance=0.05, max_exposure_s=1 / 30, flicker_hz=0.0)
    s = AeState(exposure_s=1 / 1000, analog_gain=1.0)
    for _ in range(40):
        s = ae_update(s, _measure(scene, s), p)
    m = _measure(scene, s)
    if scene * p.max_exposure_s * p.max_analog_gain * p.max_digital_gain >= 0.18:
        assert abs(m / 0.18 - 1) <= 0.05 and s.converged
    else:
        assert s.analog_gain == p.max_analog_gain and s.digital_gain == p.max_digital_gain  # dark: all limits out
    assert p.min_exposure_s <= s.exposure_s <= p.max_exposure_s


def test_ae_dark_scene_uses_limits_in_order():
    p = AeParams(max_exposure_s=1 / 30, max_analog_gain=16, max_digital_gain=4, flicker_hz=0.0)
    assert split_exposure(1 / 60, p).analog_gain == 1.0  # time first
    s = split_exposure(1 / 30 * 8, p)
    assert s.exposure_s == pytest.approx(1 / 30) and s.analog_gain == pytest.approx(8) and s.digital_gain == 1.0
    s = split_exposure(1 / 30 * 32, p)
    assert s.analog_gain == 16 and s.digital_gain == pytest.approx(2)
    s50 = split_exposure(0.027, AeParams(flicker_hz=50.0, max_exposure_s=0.04))
    assert s50.exposure_s == pytest.approx(0.02) and s50.total == pytest.approx(0.027)  # 100 Hz steps


def test_ae_damping_is_monotone_no_overshoot():
    p = AeParams(speed=0.3, flicker_hz=0.0)
    s = AeState(exposure_s=1e-3)
    ms = []
    for _ in range(30):
        ms.append(_measure(30.0, s))
        s = ae_update(s, ms[-1], p)
    assert all(b >= a - 1e-12 for a, b in zip(ms, ms[1:]))  # approaches from below without overshoot
    assert max(ms) <= 0.18 * 1.05


def test_zone_stats():
    cfa = np.tile(cfa_tile((0.2, 0.4, 0.4, 0.1), "GRBG"), (24, 32)).astype(np.float32)
    cfa[:16, :8] = 1.0  # half of the top-left zone (16x16 pixels) saturated
    z = zone_stats(cfa, "GRBG", zones=(4, 3))
    assert z.r.shape == (3, 4)
    np.testing.assert_allclose(z.r[1:, 1:], 0.2, atol=1e-6)
    np.testing.assert_allclose(z.g[1:, 1:], 0.4, atol=1e-6)
    np.testing.assert_allclose(z.b[2, 3], 0.1, atol=1e-6)
    assert z.valid[0, 0] == 0.5 and z.valid[2, 2] == 1.0
    np.testing.assert_allclose(z.r[0, 0], 0.2, atol=1e-6)  # saturated quads left out of the colour means


def _night_scene(t, ambient, leds_on, ir_led=8.0, passband=1.4):
    """Exposure-normalised brightness the ISP reports: ambient light (more of it without the IR-cut) + LEDs."""
    return ambient * (passband if leds_on else 1.0) + (ir_led if leds_on else 0.0)


def test_daynight_no_flapping_under_noisy_lux():
    rng = np.random.default_rng(7)
    p = DayNightParams(day_to_night=2.0, night_to_day=6.0, ir_led_level=8.0, ir_passband_gain=1.4,
                       hold_s=3.0, min_dwell_s=20.0, smoothing_s=1.0)
    c = DayNightController(p)
    modes = []
    dt = 0.2
    for k in range(int(600 / dt)):  # 10 minutes of dusk hovering around the day->night threshold, very noisy
        t = k * dt
        ambient = max(0.0, 2.0 + 0.3 * np.sin(t / 40) + 0.8 * rng.standard_normal())
        c.update(t, _night_scene(t, ambient, c.mode == "night"))
        modes.append(c.mode)
    switches = sum(a != b for a, b in zip(modes, modes[1:]))
    assert c.mode == "night" and switches == 1  # goes to night once and stays: the LEDs do not flip it back


def test_daynight_follows_real_transitions_with_dwell():
    p = DayNightParams(hold_s=3.0, min_dwell_s=20.0)
    c = DayNightController(p)
    log = []
    for k in range(2000):
        t = k * 0.5
        ambient = 50.0 if t < 200 else (0.5 if t < 600 else 30.0)  # day, night, morning
        d = c.update(t, _night_scene(t, ambient, c.mode == "night"))
        if d.switched:
            log.append((t, d.mode, d.ir_cut_in, d.ir_leds_on))
    assert [(m, cut, led) for _, m, cut, led in log] == [("night", False, True), ("day", True, False)]
    assert 200 + p.hold_s <= log[0][0] < 210 and 600 + p.hold_s <= log[1][0] < 610


def test_naive_single_threshold_would_flap():
    """The property the IR-aware thresholds buy: a controller reading raw brightness flips back at once."""
    naive = DayNightController(DayNightParams(ir_led_level=0.0, ir_passband_gain=1.0, min_dwell_s=0.0, hold_s=0.0,
                                              smoothing_s=0.0))
    for k in range(200):
        naive.update(k * 1.0, _night_scene(k, 1.0, naive.mode == "night"))
    assert naive.switches > 50
    aware = DayNightController(DayNightParams(min_dwell_s=0.0, hold_s=0.0, smoothing_s=0.0))
    for k in range(200):
        aware.update(k * 1.0, _night_scene(k, 1.0, aware.mode == "night"))
    assert aware.switches == 1


def test_daynight_rejects_bad_input():
    with pytest.raises(ValueError):
        DayNightParams(day_to_night=5.0, night_to_day=4.0)
    c = DayNightController()
    with pytest.raises(ValueError):
        c.update(0.0, float("nan"))
    c.update(5.0, 10.0)
    with pytest.raises(ValueError):
        c.update(4.0, 10.0)
