"""Lung zones: hand-computed thirds/halves, superior really superior whatever the slice order, pipeline wiring."""

from __future__ import annotations

import numpy as np
import pytest

from infnet.scan.pipeline import segment_array
from infnet.scan.samples import synthetic_chest_ct
from infnet.scan.volume_io import Geometry
from infnet.scan.zones import ZONES, measure_zones, slice_positions_mm
from test_segment import FakePredictor


def _toy():
    """9 slices of a right lung (rows 0-3, cols 0-9) and a left lung (rows 4-7, cols 2-5), 1 mm voxels."""
    lung = np.zeros((9, 8, 10), np.uint8)
    lung[:, 0:4, 0:10] = 1
    lung[:, 4:8, 2:6] = 2
    mask = np.zeros_like(lung)
    mask[0, 0:4, 0:5] = 1  # slice 0, right lung, ventral half (cols 0-4 of 0-9): 20 voxels
    mask[8, 4:8, 4:6] = 2  # slice 8, left lung, dorsal half (cols 4-5 of 2-5): 8 voxels, class 2
    return lung, mask


@pytest.mark.parametrize("superior_first", [False, True])
def test_hand_computed_zones(superior_first):
    lung, mask = _toy()
    z = np.arange(9, dtype=float) * 2.0  # slice s at 2 s mm: slice 8 is the most superior
    if superior_first:  # same anatomy stored the other way round: slice 0 superior
        lung, mask, z = lung[::-1], mask[::-1], z
    zones = measure_zones(lung, mask, ("ggo", "consolidation"), (2.0, 1.0, 1.0), z)
    ml = 2.0 / 1000.0
    right_lower = zones["lower"]["right"] if not superior_first else zones["upper"]["right"]
    assert right_lower["infected_volume_ml"] == pytest.approx(20 * ml)  # slice 0: inferior unless reversed
    assert right_lower["lung_volume_ml"] == pytest.approx(3 * 40 * ml)  # thirds of 9 slices: 3 each
    assert right_lower["percent_involved"] == pytest.approx(100 * 20 / 120, abs=1e-3)
    assert right_lower["ggo_volume_ml"] == pytest.approx(20 * ml) and right_lower["consolidation_volume_ml"] == 0
    left_top = zones["upper"]["left"] if not superior_first else zones["lower"]["left"]
    assert left_top["consolidation_volume_ml"] == pytest.approx(8 * ml)
    assert zones["ventral"]["right"]["infected_volume_ml"] == pytest.approx(20 * ml)
    assert zones["ventral"]["right"]["lung_volume_ml"] == pytest.approx(9 * 4 * 5 * ml)
    assert zones["dorsal"]["left"]["infected_volume_ml"] == pytest.approx(8 * ml)
    assert zones["ventral"]["left"]["infected_volume_ml"] == 0
    assert zones["extent_mm"]["right"] == {"craniocaudal": [-1.0, 17.0], "anteroposterior": 10.0}
    both = zones["upper"]["both"]
    assert both["lung_volume_ml"] == pytest.approx(zones["upper"]["right"]["lung_volume_ml"]
                                                   + zones["upper"]["left"]["lung_volume_ml"])  # fmt: skip


def test_slice_positions_follow_direction():
    shape = (5, 4, 3)
    up = Geometry((3, 4, 5), (1.0, 1.0, 2.5), (0.0, 0.0, 10.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    down = Geometry((3, 4, 5), (1.0, 1.0, 2.5), (0.0, 0.0, 10.0), (1, 0, 0, 0, 1, 0, 0, 0, -1))
    assert np.allclose(slice_positions_mm(shape, up), [10, 12.5, 15, 17.5, 20])
    assert np.allclose(slice_positions_mm(shape, down), [10, 7.5, 5, 2.5, 0])


def test_zones_in_pipeline_add_up_and_follow_superior():
    hu, spacing = synthetic_chest_ct((24, 96, 96))
    hu[16:, 30:60, 20:40] = -500  # ground glass in the superior slices of the right lung (z up, identity)
    res = {}
    for name, arr, direction in (("as-is", hu, None), ("flipped", hu[::-1], (1, 0, 0, 0, 1, 0, 0, 0, -1))):
        origin = (0.0, 0.0, 0.0) if direction is None else (0.0, 0.0, (hu.shape[0] - 1) * spacing[2])
        r = segment_array(FakePredictor(), np.ascontiguousarray(arr), spacing=spacing, direction=direction,
                          origin=origin)  # fmt: skip
        zones = r.measurements["zones"]
        assert set(ZONES) <= set(zones)
        for side in ("right", "left"):
            lung = r.measurements["lung"]["volume_ml"][side]
            inf = r.measurements["infection"]["volume_ml"][side]
            assert sum(zones[t][side]["lung_volume_ml"] for t in ("upper", "middle", "lower")) == pytest.approx(lung)
            assert sum(zones[t][side]["lung_volume_ml"] for t in ("ventral", "dorsal")) == pytest.approx(lung)
            assert sum(zones[t][side]["infected_volume_ml"] for t in ("upper", "middle", "lower")) == pytest.approx(inf)
        res[name] = zones
    # the same anatomy stored in the opposite slice order gives the same zones
    for zone in ZONES:
        assert res["as-is"][zone]["right"]["infected_volume_ml"] == pytest.approx(
            res["flipped"][zone]["right"]["infected_volume_ml"])  # fmt: skip
    assert res["as-is"]["upper"]["right"]["percent_involved"] > res["as-is"]["lower"]["right"]["percent_involved"]
