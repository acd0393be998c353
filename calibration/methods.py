"""Import every calibrator module so that the registry of :mod:`sermm.calibration.base` is full."""

from sermm.calibration.affine import AffineCalibrator, TemperatureCalibrator
from sermm.calibration.prior import PriorCalibrator
from sermm.calibration.thresholds import ThresholdCalibrator

__all__ = ["AffineCalibrator", "PriorCalibrator", "TemperatureCalibrator", "ThresholdCalibrator"]
