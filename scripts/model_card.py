"""Model cards and model tables (Markdown) rendered from the bundled models' registry entries.

``python scripts/model_card.py`` rewrites every card (``src/infnet/weights/<name>.md``), the README's five-column
model table and the full table in ``docs/results.md`` (between ``<!-- models:start -->`` / ``<!-- models:end -->``
markers); ``scripts/bundle_model.py`` calls the same functions after bundling a model.
"""

from __future__ import annotations

PAPER_KEYS = ("meanDic", "meanSen", "meanSpe", "Sm", "meanEm", "MAE")
STANDARD_KEYS = ("dice", "iou", "sensitivity", "specificity", "precision", "hd95", "dice_pooled")
PAPER_HEAD = "| {first} | Dice | Sen | Spec | S-measure | mean E-measure | MAE |\n|---|---|---|---|---|---|---|"
STANDARD_HEAD = (
    "| {first} | Dice@0.5 | IoU | sensitivity | specificity | precision | HD95 (px) | pooled Dice |\n"
    "|---|---|---|---|---|---|---|---|"
)
CLASS_NAMES = {"ggo": "ground-glass opacity", "consolidation": "consolidation"}


def _cells(metrics: dict, keys) -> str:
    return " | ".join("-" if metrics.get(k) is None else f"{metrics[k]:.3f}" for k in keys)


def _round(v, digits: int = 4):
    return v if v is None else round(v, digits)


def _tables(metrics: dict, task: str) -> str:
    """Paper- and standard-protocol tables; multi-class entries have one row per class."""
    if task == "multiclass":
        paper = [f"| {CLASS_NAMES[c]} | {_cells(metrics[c]['paper'], PAPER_KEYS)} |" for c in CLASS_NAMES]
        std = [f"| {CLASS_NAMES[c]} | {_cells(metrics[c]['standard'], STANDARD_KEYS)} |" for c in CLASS_NAMES]
        first = "class"
    else:
        paper = [f"| paper (authors' MATLAB protocol) | {_cells(metrics['paper'], PAPER_KEYS)} |"]
        std = [f"| standard | {_cells(metrics['standard'], STANDARD_KEYS)} |"]
        first = "protocol"
    return "\n".join([PAPER_HEAD.format(first=first), *paper, "", STANDARD_HEAD.format(first=first), *std])


def _temperature_note(e: dict, task: str) -> str:
    """The output temperature and the scores of the raw network (T = 1), when the card's T differs."""
    t = e.get("temperature", 1.0)
    if t == 1.0 or "metrics_t1" not in e:
        return ""
    scores = e.get("temperature_val_meanDic", {})
    val = ", ".join(f"T={float(k):g}: {v:.3f}" for k, v in scores.items())
    top = ", the largest tried: it rose with T" if scores and t >= max(float(k) for k in scores) else ""
    return f"""
Output temperature T = {t:g}: the maps are sigmoid/softmax of T x logits (`infnet.calibration`). That leaves
the masks at 0.5 (and the most likely class) unchanged and sharpens the maps, which raises the paper
protocol's threshold-averaged scores (for a hard 0/1 map meanDic equals Dice@0.5). T had the best
validation meanDic{top} ({val}; 5 val slices). The same weights at T = 1, the raw network
(`infnet predict --temperature 1`):

{_tables(e["metrics_t1"], task)}
"""


def _tta_note(e: dict, task: str) -> str:
    """Test scores with test-time augmentation, when the bundler measured them (``--tta-metrics``)."""
    m = e.get("metrics_tta")
    if not m:
        return ""
    scales = " ".join(f"{s:g}" for s in m["tta"]["scales"])
    runs = 2 * len(m["tta"]["scales"])
    if task == "multiclass":
        how = (
            f"`infnet multiclass evaluate --model {e['name']} --tta --tta-scales {scales}`: both this model and its "
            f"infection model average the logits of the slice and its mirror image at each scale, {runs}x the compute"
        )
    else:
        how = (
            f"`infnet predict --model {e['name']} --tta --tta-scales {scales}`: the mean logits of the slice and its "
            f"mirror image at each scale, {runs}x the compute"
        )
    return f"""
With test-time augmentation ({how}), at T = {e.get("temperature", 1.0):g}:

{_tables(m, task)}
"""


def _selection(e: dict) -> str:
    """How the shipped checkpoint was chosen (registry ``selection``, else the best validation Dice)."""
    return e.get("selection") or (
        f"validation Dice {_round(e['val_dice'])}, the run's best on the 5 val slices; the test slices were not "
        "used for selection"
    )


def _files(e: dict) -> str:
    """The weights file(s) and their sha256: an ensemble stored by member lists each member's file."""
    if "member_files" not in e:
        return f"sha256 `{e['sha256']}`"
    items = "; ".join(f"`{f['file']}` (sha256 `{f['sha256'][:16]}...`)" for f in e["member_files"])
    return f"one file per member: {items}"


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def model_card(e: dict) -> str:
    """The Markdown card of registry entry ``e``."""
    task = e.get("task", "binary")
    density = e["arch"] == "density-split"
    ensemble = e["arch"] == "ensemble"
    if density:
        output = (
            "ground-glass opacity and consolidation as 0/1 maps: the binarised infection prior of "
            f"`{e['infection_model']}` split by a logistic regression on the grey level and its blurs"
        )
        family = "density split of an infection map, beyond the paper"
    elif task == "multiclass":
        output = (
            "softmax probabilities of ground-glass opacity and consolidation; input = the slice (3 channels) + "
            f"the binarised infection prior of `{e['infection_model']}` (4th channel)"
        )
        family = "infection-guided multi-class segmentation, Inf-Net paper section III-E"
    elif ensemble:
        cfg = e["config"]
        output = "infection probability: sigmoid of the mean of the members' final-map logits"
        family = f"ensemble: mean logits of {cfg['n']} `{cfg['member_arch']}` models (Inf-Net), beyond the paper"
    else:
        output = "infection probability (sigmoid of the final map)"
        family = "Inf-Net, Fan et al. IEEE TMI 2020"
    all_steps = e.get("training_epochs_all_steps", e["epochs"])
    steps = f" ({all_steps} epochs over all training steps)" if all_steps != e["epochs"] else ""
    size = "each slice at its own size" if not e["input_size"] else f"{e['input_size']}x{e['input_size']}"
    if density:
        final = (
            f"- Fit: maximum likelihood on the training labels, then the opening chosen by training Dice; "
            f"{e['train_seconds']} s on {e['machine']}; {_selection(e)}"
        )
    elif ensemble and not all_steps:  # an ensemble of bundled models: their training is on their own cards
        members = ", ".join(f"`{m}`" for m in e["config"]["members"])
        final = f"""- Members: {members}; built by `infnet ensemble`, nothing trained in this step (each member's card
  gives its training); {_selection(e)}"""
    elif ensemble:
        seeds = e["config"].get("member_seeds") or [None] * e["config"]["n"]
        members = ", ".join(f"`{m}` (seed {s})" for m, s in zip(e["config"]["members"], seeds, strict=True))
        final = f"""- Members: {members}; built by `infnet ensemble`, nothing trained in this step
- {all_steps} training epochs over all members and their steps; {e["train_seconds"] / 60:.0f} min of
  training-epoch time on {e["machine"]} (sum of the epoch times in the metrics.csv files; epochs were slowed by
  other jobs sharing the CPU); {_selection(e)}"""
    else:
        minutes = e["train_seconds"] / 60
        final = f"""- Final step: {e["epochs"]} epochs{steps}; {minutes:.0f} min of training-epoch time on
  {e["machine"]} (sum of the epoch times in the metrics.csv files; median epoch of the final step
  {e["median_epoch_seconds"]} s; epochs were slowed by other jobs sharing the CPU); shipped epoch
  {e["selected_epoch"]} ({_selection(e)})"""
    return f"""# Model card: {e["name"]}

{e["description"]}

- Architecture: `{e["arch"]}` ({family}), {_size(e["size_bytes"])} fp16 safetensors,
  {_files(e)}
- Input: {size}, grey slice repeated to 3 channels, normalised with
  mean {e["normalisation"]["mean"]} / std {e["normalisation"]["std"]}
- Output: {output}

## Training
- Data: {e["training_data"]}. The 48 test slices were not used for training.
- Command: `{e["command"]}`
{final}

## Results on {e["metrics"]["test_set"]}
Measured by `scripts/bundle_model.py` on the shipped fp16 weights (equivalently: `{e["eval_command"]}`).

{_tables(e["metrics"], task)}
{_temperature_note(e, task)}{_tta_note(e, task)}
The authors' {e["authors_model"]} (their published predictions, same evaluator and test slices):

{_tables(e["authors_metrics"], task)}

{_caution(e)}## Licence and intended use
Weights: {e["licence"]}. The COVID-SemiSeg dataset is licensed for non-commercial use only; so are these
weights. Research software: not a medical device, not for clinical diagnosis.
"""


def _caution(e: dict) -> str:
    return f"## Caution\n{e['caution']}\n\n" if e.get("caution") else ""


def _replace_between(path, table: str) -> None:
    """Put ``table`` between the model markers of ``path`` (a file without the markers is left alone)."""
    from infnet.io.images import atomic_write_text

    start, end = "<!-- models:start -->", "<!-- models:end -->"
    text = path.read_text() if path.is_file() else ""
    if start not in text:
        return
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(path, f"{head}{start}\n{table}\n{end}{tail}")


def render_tables() -> None:
    """The README's model table (five columns) and the full one in docs/results.md, from the registry."""
    from pathlib import Path

    from infnet.models import weights
    from infnet.models.catalog import bundled_table, readme_table

    weights._registry.cache_clear()
    root = Path(__file__).resolve().parents[1]
    _replace_between(root / "README.md", readme_table())
    _replace_between(root / "docs" / "results.md", bundled_table(markdown=True))


def render_all() -> None:
    """Rewrite every bundled model's card and the model tables from the registry (``python scripts/model_card.py``)."""
    import json

    from infnet.io.images import atomic_write_text
    from infnet.models.weights import REGISTRY_FILE, WEIGHTS_DIR

    for e in json.loads(REGISTRY_FILE.read_text()):
        atomic_write_text(WEIGHTS_DIR / f"{e['name']}.md", model_card(e))
    render_tables()


if __name__ == "__main__":
    render_all()
