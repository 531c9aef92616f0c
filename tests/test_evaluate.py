"""`infnet evaluate`: the authors' published numbers on the real files, outputs, and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infnet.cli import main
from infnet.errors import InfnetError
from infnet.evaluate import evaluate_arrays, evaluate_folders, format_table
from infnet.metrics import PAPER_KEYS, STANDARD_KEYS
from infnet.metrics.reference import parse_result_txt

TOL = 0.002
LUNG = "reference-outputs/Results/Lung infection segmentation"
MULTI = "reference-outputs/Results/Multi-class lung infection segmentation"
RESULTS = "reference-outputs/EvaluateResults"
LUNG_GT = "Dataset/TestingSet/LungInfection-Test/GT"
MULTI_GT = "Dataset/TestingSet/MultiClassInfection-Test/GT-{}"
CLASSES = {1: "Ground-glass opacities", 2: "Consolidation"}
# names in the authors' result files -> our summary keys (the six paper keys map to themselves)
EXTRA_KEYS = {
    "maxDic": "maxDic",
    "maxEm": "maxEm",
    "adpEm": "adpEm",
    "adpDice/adpF1": "adpDic",
    "adpRec/adpSen": "adpSen",
    "adpSpe": "adpSpe",
}


def test_parse_result_txt(tmp_path):
    p = tmp_path / "r.txt"
    p.write_text("(Dataset:X; Model:Inf-Net) meanDic:0.682;meanSen:0.692;MAE:0.082.\n")
    assert parse_result_txt(p) == {"Inf-Net": {"meanDic": 0.682, "meanSen": 0.692, "MAE": 0.082}}


def _cases(root: Path):
    """(label, pred_dir, gt_dir, expected scores) for every model in the authors' result files."""
    cases = []
    for txt in (
        root / RESULTS / "LungInfection-Test-1_result.txt",
        root / RESULTS / "previous/LungInfection-Test-1_result.txt",
    ):
        for model, scores in parse_result_txt(txt).items():
            cases.append((f"{txt.parent.name}/lung/{model}", root / LUNG / model, root / LUNG_GT, scores))
    for c, cls in CLASSES.items():
        for sub in ("", "previous/"):
            txt = root / RESULTS / f"{sub}MultiClassInfection-Test-{c}_result.txt"
            for model, scores in parse_result_txt(txt).items():
                label = f"{txt.parent.name}/{cls}/{model}"
                cases.append((label, root / MULTI / cls / model, root / MULTI_GT.format(c), scores))
    return cases


@pytest.fixture(scope="module")
def reference_runs(semiseg_root):
    runs = []
    cache: dict[tuple[Path, Path], object] = {}
    for label, pred_dir, gt_dir, expected in _cases(semiseg_root):
        if (pred_dir, gt_dir) not in cache:
            cache[(pred_dir, gt_dir)] = evaluate_folders(pred_dir, gt_dir, protocol="paper")
        runs.append((label, cache[(pred_dir, gt_dir)], expected))
    return runs


def test_reference_cases_cover_the_published_models(reference_runs):
    labels = {label for label, _, _ in reference_runs}
    for model in ("Inf-Net", "Semi-Inf-Net", "UNet", "UNet++"):
        assert f"previous/lung/{model}" in labels
    assert "EvaluateResults/lung/Inf-Net" in labels
    for cls in CLASSES.values():
        assert f"previous/{cls}/Semi-Inf-Net_FCN8s_1100" in labels
    assert len(reference_runs) == 2 + 4 + 2 * (1 + 4)


def test_paper_protocol_reproduces_the_authors_numbers(reference_runs):
    failures = []
    for label, result, expected in reference_runs:
        assert result.n_images == 48
        ours = result.paper
        for key in PAPER_KEYS:
            if abs(ours[key] - expected[key]) > TOL:
                failures.append(f"{label} {key}: ours {ours[key]:.4f} vs authors {expected[key]:.3f}")
    assert not failures, "\n".join(failures)


def test_paper_extra_scores_match_the_authors_earlier_tool(reference_runs):
    failures = []
    for label, result, expected in reference_runs:
        extra = result.paper_extra
        for theirs, ours in EXTRA_KEYS.items():
            if theirs in expected and abs(extra[ours] - expected[theirs]) > TOL:
                failures.append(f"{label} {ours}: ours {extra[ours]:.4f} vs authors {expected[theirs]:.3f}")
    assert not failures, "\n".join(failures)


def test_threshold_curves_match_the_authors_mat_files(reference_runs, semiseg_root):
    """The .mat files hold the unrounded scores and per-threshold curves: we match them to float precision."""
    from scipy.io import loadmat

    runs = {label: result for label, result, _ in reference_runs}
    checks = [
        ("EvaluateResults/lung/Inf-Net", "LungInfection-Test-1-mat/Inf-Net.mat"),
        ("previous/lung/UNet", "previous/LungInfection-Test-1-mat/UNet.mat"),
        ("previous/Consolidation/FCN8s_1100", "previous/MultiClassInfection-Test-2-mat/FCN8s_1100.mat"),
    ]
    for label, mat_name in checks:
        mat = loadmat(semiseg_root / RESULTS / mat_name)
        images = [im.paper for im in runs[label].images]
        for field, key in (("dice", "column_Dic"), ("sensitivity", "column_Sen"), ("e_measure", "column_E")):
            column = np.mean([getattr(item, field) for item in images], axis=0)
            np.testing.assert_allclose(column, mat[key].ravel(), atol=1e-9, err_msg=f"{label} {key}")
        paper = runs[label].paper
        for ours, theirs in (("meanSpe", "meanSpe"), ("Sm", "Sm"), ("MAE", "mae")):
            assert paper[ours] == pytest.approx(float(mat[theirs].ravel()[0]), abs=1e-9), (label, ours)


def test_cli_on_reference_predictions_writes_json_and_csv(semiseg_root, tmp_path, capsys):
    out_json, out_csv = tmp_path / "summary.json", tmp_path / "per_image.csv"
    rc = main(
        ["evaluate", "--pred", str(semiseg_root / LUNG / "Inf-Net"), "--gt", str(semiseg_root / LUNG_GT)]
        + ["--json", str(out_json), "--csv", str(out_csv)]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "meanDic" in printed and "0.682" in printed and "hd95" in printed
    summary = json.loads(out_json.read_text())
    assert summary["n_images"] == 48
    assert tuple(summary["paper"]) == PAPER_KEYS
    assert tuple(summary["standard"]) == STANDARD_KEYS
    assert summary["paper"]["meanDic"] == pytest.approx(0.682, abs=TOL)
    assert 0 < summary["standard"]["hd95"] < 200
    with out_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 48 and rows[0]["stem"] == "6"  # natural order
    assert {"paper_dice", "paper_sm", "paper_em_adp", "std_dice", "std_hd95"} <= set(rows[0])
    mean_dice = np.mean([float(r["paper_dice"]) for r in rows])
    assert mean_dice == pytest.approx(summary["paper"]["meanDic"], abs=1e-5)


# --------------------------------------------------------------------------------------- synthetic data


def _mask(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    r0, r1, c0, c1 = box
    m[r0:r1, c0:c1] = 255
    return m


@pytest.fixture
def folders(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    for i, box in enumerate([(2, 8, 2, 8), (4, 12, 3, 9), (0, 0, 0, 0)], start=1):
        Image.fromarray(_mask(16, 16, box)).save(gt / f"{i}.png")
        soft = (_mask(16, 16, box).astype(float) * 0.8 + 20).astype(np.uint8)
        Image.fromarray(soft).save(pred / f"{i}.png")
    return pred, gt


def test_evaluate_folders_both_protocols(folders):
    pred, gt = folders
    result = evaluate_folders(pred, gt)
    assert result.n_images == 3 and [im.stem for im in result.images] == ["1", "2", "3"]
    assert tuple(result.paper) == PAPER_KEYS and tuple(result.standard) == STANDARD_KEYS
    # image 3 has empty GT and an empty thresholded prediction: both-empty conventions
    third = result.images[2].standard
    assert third.dice == 1.0 and third.hd95 == 0.0
    assert result.standard["dice"] == pytest.approx(1.0)
    summary = result.summary()
    assert summary["n_images"] == 3 and set(summary) >= {"paper", "standard", "standard_pooled"}
    assert "meanDic" in format_table(result)


def test_mode_1_binary_predictions_are_accepted(folders, tmp_path):
    pred, gt = folders
    binary = tmp_path / "binary"
    binary.mkdir()
    for p in gt.iterdir():
        Image.fromarray(np.asarray(Image.open(p)) > 128).convert("1").save(binary / p.name)
    assert Image.open(binary / "1.png").mode == "1"
    result = evaluate_folders(binary, gt)
    assert result.standard["dice"] == pytest.approx(1.0)
    assert result.paper["Sm"] == pytest.approx(1.0)


def test_protocol_selection(folders):
    pred, gt = folders
    paper_only = evaluate_folders(pred, gt, protocol="paper")
    assert paper_only.standard is None and paper_only.paper is not None
    standard_only = evaluate_folders(pred, gt, protocol="standard")
    assert standard_only.paper is None and "paper" not in standard_only.summary()
    with pytest.raises(InfnetError):
        evaluate_folders(pred, gt, protocol="matlab")


def test_resizable_prediction_is_resized(folders):
    pred, gt = folders
    big = np.kron(np.asarray(Image.open(pred / "1.png")), np.ones((2, 2), np.uint8))
    Image.fromarray(big).save(pred / "1.png")
    result = evaluate_folders(pred, gt)
    assert result.images[0].resized and result.summary()["n_resized"] == 1


def test_predictions_without_gt_are_listed_not_scored(folders):
    pred, gt = folders
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(pred / "extra.png")
    result = evaluate_folders(pred, gt)
    assert result.n_images == 3 and result.unmatched_predictions == ["extra"]


def test_single_file_pair(folders):
    pred, gt = folders
    result = evaluate_folders(pred / "2.png", gt / "2.png")
    assert result.n_images == 1 and result.images[0].stem == "2"


def test_evaluate_arrays():
    gt = _mask(8, 8, (2, 6, 2, 6))
    result = evaluate_arrays([("a", gt, gt)], protocol="standard")
    assert result.standard["dice"] == 1.0 and result.standard["hd95"] == 0.0


# ------------------------------------------------------------------------------------------- bad input


def _error(capsys, argv: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("infnet: error: ")
    return lines[0]


def test_missing_gt_folder(folders, capsys):
    pred, gt = folders
    msg = _error(capsys, ["evaluate", "--pred", str(pred), "--gt", str(gt.parent / "nope")])
    assert "nope" in msg and "not found" in msg


def test_missing_prediction_folder(folders, capsys):
    pred, gt = folders
    msg = _error(capsys, ["evaluate", "--pred", str(pred.parent / "nope"), "--gt", str(gt)])
    assert "nope" in msg and "not found" in msg


def test_gt_without_prediction_names_it(folders, capsys):
    pred, gt = folders
    (pred / "2.png").unlink()
    msg = _error(capsys, ["evaluate", "--pred", str(pred), "--gt", str(gt)])
    assert "2.png" in msg and "no prediction" in msg


def test_size_mismatch_beyond_resizing(folders, capsys):
    pred, gt = folders
    Image.fromarray(np.zeros((16, 24), np.uint8)).save(pred / "3.png")  # aspect 1.5 vs 1
    msg = _error(capsys, ["evaluate", "--pred", str(pred), "--gt", str(gt)])
    assert str(pred / "3.png") in msg and "24x16" in msg and "16x16" in msg


def test_unreadable_prediction(folders, capsys):
    pred, gt = folders
    (pred / "1.png").write_bytes(b"this is not a png")
    msg = _error(capsys, ["evaluate", "--pred", str(pred), "--gt", str(gt)])
    assert str(pred / "1.png") in msg and "not a readable image" in msg


def test_non_image_file(folders, tmp_path, capsys):
    pred, gt = folders
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    msg = _error(capsys, ["evaluate", "--pred", str(txt), "--gt", str(gt / "1.png")])
    assert "notes.txt" in msg and "not an image" in msg


def test_file_and_folder_mixed(folders, capsys):
    pred, gt = folders
    msg = _error(capsys, ["evaluate", "--pred", str(pred / "1.png"), "--gt", str(gt)])
    assert "two folders or two image files" in msg


def test_empty_gt_folder(folders, tmp_path, capsys):
    pred, _ = folders
    empty = tmp_path / "empty"
    empty.mkdir()
    msg = _error(capsys, ["evaluate", "--pred", str(pred), "--gt", str(empty)])
    assert "empty" in msg and "no GT images" in msg


def test_empty_prediction_folder(folders, tmp_path, capsys):
    _, gt = folders
    empty = tmp_path / "empty"
    empty.mkdir()
    msg = _error(capsys, ["evaluate", "--pred", str(empty), "--gt", str(gt)])
    assert "empty" in msg and "no prediction images" in msg


def test_outputs_never_overwrite_an_input(folders, capsys):
    pred, gt = folders
    before = (gt / "1.png").read_bytes()
    msg = _error(capsys, ["evaluate", "--pred", str(pred), "--gt", str(gt), "--csv", str(gt / "1.png")])
    assert "1.png" in msg and "refusing to overwrite" in msg
    assert (gt / "1.png").read_bytes() == before


def test_json_and_csv_must_differ(folders, tmp_path, capsys):
    pred, gt = folders
    out = str(tmp_path / "out.txt")
    msg = _error(capsys, ["evaluate", "--pred", str(pred), "--gt", str(gt), "--json", out, "--csv", out])
    assert "same file" in msg
