"""Data pipeline: pairing, edges, the training Dataset, multi-scale sizes, the real COVID-SemiSeg layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _synth import make_slices
from infnet.data import semiseg
from infnet.data.dataset import PAPER_RATES, SliceDataset, multiscale_batch, scaled_size
from infnet.data.edges import mask_to_edge
from infnet.data.pairs import pair_by_stem
from infnet.errors import InfnetError


def test_multiscale_sizes_are_multiples_of_32():
    assert [scaled_size(352, r) for r in PAPER_RATES] == [256, 352, 448]
    assert scaled_size(64, 0.75) == 64  # 48 rounds up to 64
    x = torch.zeros(2, 3, 352, 352)
    m = torch.zeros(2, 1, 352, 352)
    xs, ms, es = multiscale_batch(x, m, m, 256)
    assert xs.shape == (2, 3, 256, 256) and ms.shape == es.shape == (2, 1, 256, 256)


def test_mask_to_edge_hand_case():
    mask = np.zeros((7, 7), np.uint8)
    mask[2:5, 2:5] = 255
    edge = mask_to_edge(mask)
    assert edge.dtype == np.uint8 and set(np.unique(edge)) == {0, 255}
    # 4-connected dilation minus erosion of a 3x3 square: 5x5 without its corners and without the centre
    expected = np.zeros((7, 7), bool)
    expected[1:6, 1:6] = True
    expected[[1, 1, 5, 5], [1, 5, 1, 5]] = False
    expected[3, 3] = False
    assert np.array_equal(edge > 0, expected)
    assert not mask_to_edge(np.zeros((5, 5), np.uint8)).any()
    assert not mask_to_edge(np.full((5, 5), 255, np.uint8)).any()


def test_slice_dataset_items(tmp_path):
    imgs, masks = make_slices(tmp_path, n=3)
    ds = SliceDataset(imgs, masks, size=64)
    assert len(ds) == 3 and ds.stems == ["0", "1", "2"]
    image, mask, edge = ds[0]
    assert image.shape == (3, 64, 64) and mask.shape == edge.shape == (1, 64, 64)
    assert torch.equal(image[0], image[1])  # grey repeated
    assert float(image.min()) >= -1.0 and float(image.max()) <= 1.0  # mean/std 0.5
    assert 0 < float(mask.mean()) < 0.3 and float(edge.sum()) > 0
    aug = SliceDataset(imgs, masks, size=64, augment=True)
    torch.manual_seed(1)
    a_img, a_mask, _ = aug[0]
    assert a_img.shape == (3, 64, 64) and float(a_mask.min()) >= 0 and float(a_mask.max()) <= 1


def test_pairing_errors_name_the_file(tmp_path):
    imgs, masks = make_slices(tmp_path, n=2)
    (masks / "1.png").unlink()
    with pytest.raises(InfnetError, match=r"1\.png: no mask with stem '1'"):
        pair_by_stem(imgs, masks)
    with pytest.raises(InfnetError, match="folder not found"):
        pair_by_stem(tmp_path / "nope", masks)


def test_size_mismatch_is_reported(tmp_path):
    from PIL import Image

    imgs, masks = make_slices(tmp_path, n=1)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(masks / "0.png")
    with pytest.raises(InfnetError, match="0.png: mask size"):
        SliceDataset(imgs, masks, size=32)


def test_real_doctor_label_split(semiseg_root):
    split = semiseg.SPLITS["doctor-label"]
    train = semiseg.read_split_list(semiseg_root, "train")
    val = semiseg.read_split_list(semiseg_root, "val")
    assert len(train) == 45 and len(val) == 5 and not set(train) & set(val)
    ds = SliceDataset(
        semiseg_root / split.image_dir,
        semiseg_root / split.mask_dir,
        semiseg_root / split.edge_dir,
        stems=val,
        size=352,
    )
    image, mask, edge = ds[0]
    assert image.shape == (3, 352, 352) and mask.shape == (1, 352, 352)
    assert float(mask.sum()) > 0 and float(edge.sum()) > 0
    test_stems = {p.stem for p in (semiseg_root / semiseg.SPLITS["lung-test"].image_dir).iterdir()}
    assert len(test_stems) == 48 and not test_stems & (set(train) | set(val))  # test never in training
