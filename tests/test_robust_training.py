"""The robust recipe end to end on tiny data: random presentations, real CT negatives, validation over views."""

from __future__ import annotations

import csv

import pytest
import torch

from _synth import make_slices
from infnet.data.presentation import VALIDATION_VIEWS
from infnet.errors import InfnetError
from infnet.training.config import TrainConfig
from infnet.training.negatives import NegativeDataset, load_negative_slices
from infnet.training.trainer import build_datasets, resolve_data, train


def _cfg(imgs, masks, **kw) -> TrainConfig:
    base = dict(model="infnet-effl0", encoder_weights=None, train_images=str(imgs), train_masks=str(masks),
                val_images=str(imgs), val_masks=str(masks), epochs=1, batch_size=4, lr=1e-3, train_size=64,
                rates=[1.0], seed=0, presentation=True)  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def test_negatives_are_the_lung_slices_of_a_real_scan_with_empty_masks(ct_samples):
    pool = load_negative_slices([ct_samples / "chestimagingplatform" / "ct-64.nrrd"])
    assert 50 < len(pool) < 79  # slices with >= 1 cm^2 of lung of the 79
    ds = NegativeDataset(pool, 5, 64, (0.5,) * 3, (0.5,) * 3, None, augment=False)
    torch.manual_seed(0)
    image, mask, edge = ds[0]
    assert image.shape == (3, 64, 64) and mask.sum() == 0 and edge.sum() == 0


def test_negatives_refuse_a_scan_without_lungs(tmp_path, ct_samples):
    with pytest.raises(InfnetError, match="no lung found"):
        load_negative_slices([ct_samples / "totalsegmentator" / "example_ct_dicom"])


def test_robust_run_validates_over_views_and_mixes_negatives(tmp_path, ct_samples):
    imgs, masks = make_slices(tmp_path / "data", n=4)
    cfg = _cfg(imgs, masks, negatives=[str(ct_samples / "chestimagingplatform" / "ct-64.nrrd")], negatives_per_epoch=3)
    train_set, val_sets = build_datasets(cfg, resolve_data(cfg), (0.5,) * 3, (0.5,) * 3)
    assert len(train_set) == 4 + 3
    assert [v.view for v in val_sets] == list(VALIDATION_VIEWS)
    torch.manual_seed(0)
    a, b = train_set[0][0], train_set[0][0]
    assert not torch.equal(a, b)  # a new presentation per draw
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    with open(run / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and 0 <= float(rows[0]["val_dice"]) <= 1
    assert TrainConfig.load(run / "config.json").negatives_per_epoch == 3


def test_negatives_need_a_count():
    cfg = TrainConfig(negatives=["x.nii.gz"], negatives_per_epoch=0)
    with pytest.raises(InfnetError, match="go together"):
        build_datasets(cfg, {"train": {}}, (0.5,) * 3, (0.5,) * 3)
