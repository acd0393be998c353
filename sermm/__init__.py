"""sermm: multimodal speech emotion recognition challenge toolkit (score files, fusion, calibration).

The core reads and validates score and label files, aligns systems by id, computes metrics
and writes reports. It never imports torch.
"""

__version__ = "0.1.0"
