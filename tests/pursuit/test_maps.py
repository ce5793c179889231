"""PNG maps of `pursuit plan --png` and `pursuit hide --png`: the drawn colours are there."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run

ARGS = ["manhattan", "--at", "-73.9855,40.7580", "--time", "2026-12-01T21:30:00-05:00"]
CHECKPOINT_RGB = (0x21, 0x66, 0xAC)  # checkpoints and units in citywatch.pursuit.maps
ORIGIN_RGB = (0xD7, 0x19, 0x1C)  # the last known position's star


def _pixels(path: Path, rgb: tuple[int, int, int]) -> int:
    import matplotlib.image as mpimg

    img = np.round(mpimg.imread(path)[:, :, :3] * 255).astype(int)
    return int(np.all(img == np.asarray(rgb), axis=2).sum())


def test_plan_png_draws_checkpoints_and_origin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    units = tmp_path / "units.csv"
    units.write_text(
        "id,type,lon,lat\nc1,patrol_car,-73.9870,40.7560\nm1,motorcycle,-73.9800,40.7620\n",
        encoding="utf-8",
    )
    png = tmp_path / "plan.png"
    cmd = ["pursuit", "plan", *ARGS, "--units", str(units), "-k", "2", "--routes", "200"]
    code, out, err = run([*cmd, "--png", str(png), "--json"], capsys)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(json.loads(out)["checkpoints"]) >= 1
    assert _pixels(png, CHECKPOINT_RGB) > 20
    assert _pixels(png, ORIGIN_RGB) > 20
    # Without checkpoints (hide) the checkpoint colour is absent: the test can fail.
    hide = tmp_path / "hide.png"
    code, _, err = run(["pursuit", "hide", *ARGS, "--routes", "200", "--png", str(hide)], capsys)
    assert code == 0, err
    assert _pixels(hide, CHECKPOINT_RGB) == 0
    assert _pixels(hide, ORIGIN_RGB) > 20
