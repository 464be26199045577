"""report.md: a large image set shows only its first images (a figure of 1000 rows cannot be drawn)."""
import numpy as np

from testbed.runner.report import GRID_IMAGES, write_report


def test_a_thousand_images_show_only_the_first_few(tmp_path):
    originals = [(f"im{i}", np.full((3, 28, 28), i / 1000, np.float32)) for i in range(1000)]
    recons = {20.0: {name: img for name, img in originals}}
    rows = [{"user": "u0", "model": "m", "snr_db": 20.0, "psnr_db": 30.0, "status": "ok", "point": 0}]
    path = write_report(tmp_path, {"scenario": "s", "system": "x", "rows": rows}, originals, recons)
    assert f"the first {GRID_IMAGES} of 1000 images" in path.read_text()
    assert (tmp_path / "images.png").stat().st_size > 0
