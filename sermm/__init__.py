"""sermm: multimodal speech emotion recognition challenge toolkit (score files, fusion, calibration).

The core reads and validates score and label files, aligns systems by id, computes metrics
and writes reports. It never imports torch.
"""

import os

# Arrow's allocator (mimalloc) keeps freed pages for a while; a CSV parse leaves several times
# the file size of them behind, which the score matrices that follow cannot reuse. Returning
# them at once lowers the peak memory of a command on CSV inputs (benchmarks/fusion.py measures
# it). Read when pyarrow loads; a value the user set wins.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")

__version__ = "0.1.0"
