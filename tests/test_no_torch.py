"""The core, fusion and calibration layers must install and run without torch."""

import subprocess
import sys


def test_core_fusion_and_calibration_never_import_torch():
    code = (
        "import sys, sermm, sermm.tables, sermm.align, sermm.metrics, sermm.report, "
        "sermm.fusion.cli, sermm.calibration.cli, sermm.cli.report, sermm.cli.submit, sermm.cli.data, "
        "sermm.cli.system, sermm.cli.system_options\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
