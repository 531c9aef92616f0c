"""`infnet data check`: the real COVID-SemiSeg root, generic folders, and every kind of problem."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infnet.cli import main
from infnet.data.check import check_dataset, format_report
from infnet.data.semiseg import DOCTOR, PSEUDO


def _digest(root: Path) -> dict[str, tuple[str, float]]:
    return {
        str(p.relative_to(root)): (hashlib.md5(p.read_bytes()).hexdigest(), p.stat().st_mtime)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _img(path: Path, h: int = 12, w: int = 10, value: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w), value, np.uint8)).save(path)


def _mask(path: Path, h: int = 12, w: int = 10, values=(0, 255)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.full((h, w), values[0], np.uint8)
    m[2:6, 2:6] = values[1]
    Image.fromarray(m).save(path)


@pytest.fixture
def generic(tmp_path):
    root = tmp_path / "ds"
    for stem in ("a", "b", "c"):
        _img(root / "images" / f"{stem}.jpg")
        _mask(root / "masks" / f"{stem}.png")
    return root


# -------------------------------------------------------------------------------------------- real data


def test_real_semiseg_root(semiseg_root, capsys):
    before = _digest(semiseg_root / "Dataset/TestingSet")
    report = check_dataset(semiseg_root)
    assert report.layout == "covid-semiseg" and report.ok
    splits = {s.name: s for s in report.splits}
    assert len(splits) == 7
    assert (splits["doctor-label"].n_pairs, splits["doctor-label"].n_edges) == (50, 50)
    assert splits["pseudo-label"].n_pairs == 1600
    assert splits["lung-test"].n_pairs == 48
    assert splits["multiclass-train"].n_pairs == 50 and splits["multiclass-train"].mask_kind == "multiclass"
    assert splits["multiclass-test-consolidation"].n_empty_masks == 10
    # the pseudo labels' intermediate grey values are a warning, nowhere else is there one
    assert [s.name for s in report.splits if s.warnings] == ["pseudo-label"]
    assert "intermediate grey values" in splits["pseudo-label"].warnings[0]

    rc = main(["data", "check", str(semiseg_root)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "doctor-label" in out and "1600 pairs" in out and out.strip().splitlines()[-1].startswith("OK")
    assert _digest(semiseg_root / "Dataset/TestingSet") == before


def test_real_split_as_generic_folder(semiseg_root):
    report = check_dataset(semiseg_root / "Dataset/TestingSet/LungInfection-Test")  # Imgs/ + GT/
    assert report.layout == "generic" and report.ok and report.splits[0].n_pairs == 48


# ----------------------------------------------------------------------------------------------- generic


def test_generic_ok(generic, capsys):
    rc = main(["data", "check", str(generic)])
    out = capsys.readouterr().out
    assert rc == 0 and "3 images, 3 masks" in out and "3 pairs" in out


def test_generic_imgs_gt_names(tmp_path):
    root = tmp_path / "ds"
    _img(root / "Imgs" / "1.jpg")
    _mask(root / "GT" / "1.png")
    assert check_dataset(root).ok


def _failing(capsys, root: Path) -> str:
    before = _digest(root)
    rc = main(["data", "check", str(root)])
    out = capsys.readouterr().out
    assert rc == 1 and "FAILED" in out
    assert _digest(root) == before  # nothing modified
    return out


def test_unmatched_stems(generic, capsys):
    (generic / "masks" / "b.png").unlink()
    _mask(generic / "masks" / "zzz.png")
    out = _failing(capsys, generic)
    assert "b.jpg: no mask with stem 'b'" in out
    assert "zzz.png: no image with stem 'zzz'" in out


def test_size_mismatch(generic, capsys):
    _mask(generic / "masks" / "c.png", h=20, w=10)
    out = _failing(capsys, generic)
    assert "c.png: size 10x20 differs from image c.jpg (10x12)" in out


def test_unreadable_file(generic, capsys):
    (generic / "images" / "a.jpg").write_bytes(b"garbage")
    out = _failing(capsys, generic)
    assert "a.jpg: not a readable image" in out


def test_non_binary_mask(generic, capsys):
    _mask(generic / "masks" / "a.png", values=(0, 128))
    out = _failing(capsys, generic)
    assert "a.png: not a binary 0/255 mask" in out


def test_zero_one_mask(generic, capsys):
    _mask(generic / "masks" / "b.png", values=(0, 1))
    out = _failing(capsys, generic)
    assert "b.png: values 0/1" in out


def test_multiclass_mask_values(tmp_path, capsys):
    root = tmp_path / "ds"
    _img(root / "images" / "1.png")
    m = np.zeros((12, 10), np.uint8)
    m[1:3, 1:3], m[5:7, 5:7] = 1, 3
    pal = Image.fromarray(m, mode="P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    (root / "masks").mkdir()
    pal.save(root / "masks" / "1.png")
    out = _failing(capsys, root)
    assert "1.png: values 3 outside {0, 1, 2}" in out


def test_duplicate_stems_and_non_image_files(generic, capsys):
    _img(generic / "images" / "a.png")
    (generic / "masks" / "README.txt").write_text("notes")
    out = _failing(capsys, generic)
    assert "stem 'a' appears twice" in out
    assert "README.txt: not an image file" in out


def test_max_issues_limits_the_listing(generic, capsys):
    for stem in ("a", "b", "c"):
        (generic / "masks" / f"{stem}.png").unlink()
        _mask(generic / "masks" / f"x{stem}.png")
    main(["data", "check", str(generic), "--max-issues", "2"])
    out = capsys.readouterr().out
    assert "... and 4 more" in out


# ---------------------------------------------------------------------------------- fake SemiSeg layout


def test_pseudo_label_grey_values_warn_but_doctor_label_errors(tmp_path):
    root = tmp_path / "COVID-SemiSeg"
    for split in (DOCTOR, PSEUDO):
        _img(root / split / "Imgs" / "1.jpg")
        _mask(root / split / "GT" / "1.png", values=(0, 200))
    report = check_dataset(root)
    by_name = {s.name: s for s in report.splits}
    assert set(by_name) == {"doctor-label", "pseudo-label"}
    assert by_name["pseudo-label"].ok and by_name["pseudo-label"].warnings
    assert not by_name["doctor-label"].ok
    assert "GT/1.png: not a binary 0/255 mask" in by_name["doctor-label"].errors[0]
    assert "FAILED" in format_report(report)


def test_semiseg_edge_folder_is_checked(tmp_path):
    root = tmp_path / "COVID-SemiSeg"
    _img(root / DOCTOR / "Imgs" / "1.jpg")
    _mask(root / DOCTOR / "GT" / "1.png")
    _mask(root / DOCTOR / "Edge" / "1.png", h=5)
    report = check_dataset(root)
    assert "Edge/1.png: size 10x5 differs" in report.splits[0].errors[0]


# ------------------------------------------------------------------------------------------- bad paths


def _error(capsys, argv: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("infnet: error: ")
    return lines[0]


def test_missing_path(tmp_path, capsys):
    msg = _error(capsys, ["data", "check", str(tmp_path / "nope")])
    assert "nope" in msg and "not found" in msg


def test_not_a_dataset_folder(tmp_path, capsys):
    (tmp_path / "stuff").mkdir()
    msg = _error(capsys, ["data", "check", str(tmp_path / "stuff")])
    assert "not a dataset folder" in msg


def test_path_is_a_file(tmp_path, capsys):
    f = tmp_path / "file.png"
    _img(f)
    msg = _error(capsys, ["data", "check", str(f)])
    assert "not a folder" in msg
