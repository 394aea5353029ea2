"""camlab.sensor: the camera's sensor model — Bayer CFA patterns, raw file I/O, Poisson–Gaussian noise, unprocessing.

Bayer, US patent 3,971,065 (1976); Adobe DNG Specification 1.4; MIPI CSI-2 v1.3; Foi et al., IEEE TIP 2008;
Brooks et al., "Unprocessing Images for Learned Raw Denoising", CVPR 2019.
"""
from camlab.sensor.cfa import PATTERNS, Pattern, channel_masks, channel_offsets, mosaic, parse_pattern
from camlab.sensor.noise import (NoiseModel, calibrate_flat_dark, calibrate_single_image, fit_gain_model,
                                 gain_from_iso)
from camlab.sensor.raw_io import (RawFrame, pack_mipi_raw10, pack_mipi_raw12, read_headerless, read_raw,
                                  unpack_mipi_raw10, unpack_mipi_raw12, write_dng)
from camlab.sensor.unprocess import UnprocessTruth, process, unprocess

__all__ = ["PATTERNS", "Pattern", "channel_masks", "channel_offsets", "mosaic", "parse_pattern", "NoiseModel",
           "calibrate_flat_dark", "calibrate_single_image", "fit_gain_model", "gain_from_iso", "RawFrame", "pack_mipi_raw10",
           "pack_mipi_raw12", "read_headerless", "read_raw", "unpack_mipi_raw10", "unpack_mipi_raw12", "write_dng",
           "UnprocessTruth", "process", "unprocess"]
