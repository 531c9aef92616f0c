"""Semi-Inf-Net: paper Algorithm 1 (progressive pseudo-labelling) and the two-step training of section III-D.

Algorithm 1: start from a model trained on the labeled set. Each round draws K unlabeled slices at random
without replacement, labels them with the current model (probability >= 0.5 -> {0,255} PNG; edges come from
the masks), adds them to the training pool and fine-tunes on (at most ``round_cap`` slices drawn from) the pool.
Rounds repeat until the unlabeled pool is empty; with ``max_rounds`` the slices left after that many fine-tuning
rounds are labelled by the latest model in one last pass. The round that empties the pool does not fine-tune:
its model would not be used. Then (III-D) a fresh model (ImageNet encoder) is pre-trained on all pseudo-labeled
slices and fine-tuned on the doctor-labeled ones. ``from_published`` runs only this two-step training, on the
authors' pseudo-labels (``Pseudo-label/GT``, binarised at 128 by the training dataset).

Every training step is :func:`infnet.training.trainer.train`. Run directory::

    out/semi.json                 SemiConfig
    out/plan.json                 the unlabeled slices in draw order (seeded)
    out/manifest.jsonl            per pseudo-label: round, image, label, checkpoint, seed
    out/pseudo/<stem>.png         pseudo-labels {0,255} at the slice's size
    out/rounds/rNNN/{data,run}    round N: linked training folder, trainer run; done.json when finished
    out/pretrain/{data,run}       pre-training on all pseudo-labels
    out/finetune/run              fine-tuning on the doctor labels; best.safetensors = Semi-Inf-Net
    out/result.json               the final checkpoint

Re-running with ``resume=True`` skips finished rounds and steps and continues the interrupted one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from infnet.data import semiseg
from infnet.data.pairs import index_by_stem, natural_key, pair_by_stem
from infnet.errors import InfnetError
from infnet.io.images import atomic_write_text
from infnet.semi.config import SemiConfig
from infnet.semi.steps import Manifest, Sample, link_samples, train_step, write_pseudo_labels
from infnet.training.config import TrainConfig

DEFAULT_PUBLISHED_MODEL = "infnet-effl2"
_PATH_FIELDS = (
    "init_checkpoint",
    "data",
    "labeled_images",
    "labeled_masks",
    "unlabeled_images",
    "published_masks",
    "val_images",
    "val_masks",
)


def _start(cfg: SemiConfig, out: Path, resume: bool) -> SemiConfig:
    """Resolve the model, refuse foreign or occupied run directories; the saved config wins on resume."""
    from infnet.models.registry import read_checkpoint_meta

    model = cfg.model
    if cfg.init_checkpoint and not cfg.from_published:
        arch = read_checkpoint_meta(cfg.init_checkpoint)["arch"]
        if model is not None and model != arch:
            raise InfnetError(f"{cfg.init_checkpoint}: checkpoint is a '{arch}', not '{model}'")
        model = arch
    saved_path = out / "semi.json"
    if resume:
        if not saved_path.is_file():
            raise InfnetError(f"{out}: nothing to resume (no semi.json)")
        saved = SemiConfig.load(saved_path)
        if model is not None and saved.model != model:
            raise InfnetError(f"{out}: run directory is for model '{saved.model}', not '{model}'")
        return saved
    if saved_path.exists():
        raise InfnetError(f"{out}: run directory already holds a Semi-Inf-Net run; use --resume or another --out")
    if not cfg.from_published and not cfg.init_checkpoint:
        raise InfnetError("Semi-Inf-Net needs --init CHECKPOINT (trained on the labeled set) or --from-published")
    if cfg.k < 1 or (cfg.round_cap is not None and cfg.round_cap < 1) or (cfg.max_rounds or 0) < 0:
        raise InfnetError(f"invalid budget: k={cfg.k}, round_cap={cfg.round_cap}, max_rounds={cfg.max_rounds}")
    cfg.model = model or DEFAULT_PUBLISHED_MODEL
    for key in _PATH_FIELDS:  # absolute, so that a resume from another working directory finds them
        if getattr(cfg, key):
            setattr(cfg, key, str(Path(getattr(cfg, key)).resolve()))
    return cfg


def _sources(cfg: SemiConfig) -> tuple[list[Sample], list[Path], Path | None, dict]:
    """Labeled samples, unlabeled slices (natural order), published label folder, fine-tuning data fields."""
    if cfg.labeled_images or cfg.labeled_masks or cfg.unlabeled_images:
        if not (cfg.labeled_images and cfg.labeled_masks and cfg.unlabeled_images):
            raise InfnetError("give --labeled-images, --labeled-masks and --unlabeled together (or --data)")
        pairs = pair_by_stem(cfg.labeled_images, cfg.labeled_masks)
        unlabeled_dir = Path(cfg.unlabeled_images)
        published = Path(cfg.published_masks) if cfg.published_masks else None
        finetune = dict(
            train_images=cfg.labeled_images,
            train_masks=cfg.labeled_masks,
            val_images=cfg.val_images,
            val_masks=cfg.val_masks,
        )
    else:
        root = Path(cfg.data) if cfg.data else semiseg.find_dataset()
        doctor, pseudo = semiseg.SPLITS["doctor-label"], semiseg.SPLITS["pseudo-label"]
        stems = semiseg.read_split_list(root, cfg.train_split)
        pairs = pair_by_stem(root / doctor.image_dir, root / doctor.mask_dir, stems)
        unlabeled_dir = root / pseudo.image_dir
        published = Path(cfg.published_masks) if cfg.published_masks else root / pseudo.mask_dir
        finetune = dict(data=str(root), train_split=cfg.train_split, val_split=cfg.val_split)
    labeled = [Sample(f"L_{stem}", img, mask) for stem, img, mask in pairs]
    index = index_by_stem(unlabeled_dir)
    if not index:
        raise InfnetError(f"{unlabeled_dir}: no unlabeled images found")
    unlabeled = [index[s].resolve() for s in sorted(index, key=natural_key)]
    return labeled, unlabeled, published, finetune


def _train_cfg(cfg: SemiConfig, **kw) -> TrainConfig:
    base = dict(
        model=cfg.model,
        encoder_weights=None,
        val_split=None,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        train_size=cfg.train_size,
        rates=list(cfg.rates),
        augment=cfg.augment,
        seed=cfg.seed,
        device=cfg.device,
    )
    base.update(kw)
    base.setdefault("decay_epoch", max(1, base["epochs"] // 2))  # the paper decays at 50 of 100 epochs
    return TrainConfig(**{k: (str(v) if isinstance(v, Path) else v) for k, v in base.items()})


def _plan(out: Path, unlabeled: list[Path], seed: int) -> list[Path]:
    """The unlabeled slices in random draw order, fixed at the first run (so rounds are the same on resume)."""
    path = out / "plan.json"
    if path.is_file():
        plan = [Path(p) for p in json.loads(path.read_text())["unlabeled"]]
        if sorted(map(str, plan)) != sorted(map(str, unlabeled)):
            raise InfnetError(f"{path}: the unlabeled slices changed since this run started")
        return plan
    order = np.random.default_rng(seed).permutation(len(unlabeled))
    plan = [unlabeled[i] for i in order]
    atomic_write_text(path, json.dumps({"seed": seed, "unlabeled": [str(p) for p in plan]}, indent=1))
    return plan


def _pseudo_samples(images: list[Path], manifest: Manifest) -> list[Sample]:
    return [Sample(f"U_{p.stem}", p, Path(manifest.done(p)["label"])) for p in images]


def run_algorithm(
    cfg: SemiConfig, out: Path, labeled: list[Sample], unlabeled: list[Path], progress: bool = True
) -> list[Sample]:
    """Algorithm 1; returns all pseudo-labeled samples. Finished rounds (done.json) are skipped."""
    manifest = Manifest(out / "manifest.jsonl")
    plan = _plan(out, unlabeled, cfg.seed)
    passes = [plan[i : i + cfg.k] for i in range(0, len(plan), cfg.k)]
    rounds = len(passes) - 1 if cfg.max_rounds is None else min(cfg.max_rounds, len(passes) - 1)
    current = Path(cfg.init_checkpoint).resolve()
    pseudo: list[Sample] = []
    for r in range(1, rounds + 2):
        batch = passes[r - 1] if r <= rounds else [p for chunk in passes[rounds:] for p in chunk]
        write_pseudo_labels(
            current, batch, out / "pseudo", manifest, r, cfg.seed, cfg.threshold, cfg.train_size, cfg.device
        )
        pseudo += _pseudo_samples(batch, manifest)
        if r > rounds:
            break
        rdir = out / "rounds" / f"r{r:03d}"
        done = rdir / "done.json"
        if not done.is_file():
            pool = labeled + pseudo
            n = len(pool) if cfg.round_cap is None else min(cfg.round_cap, len(pool))
            pick = sorted(np.random.default_rng([cfg.seed, r]).choice(len(pool), n, replace=False).tolist())
            images, masks = link_samples([pool[i] for i in pick], rdir / "data")
            tcfg = _train_cfg(
                cfg,
                train_images=images,
                train_masks=masks,
                epochs=cfg.round_epochs,
                decay_epoch=cfg.round_epochs,
                seed=cfg.seed + r,
            )
            if progress:
                print(f"round {r}/{rounds}: fine-tuning on {n} slices ({len(pseudo)} pseudo-labeled so far)")
            last = train_step(tcfg, rdir / "run", init=current, progress=progress)
            info = dict(round=r, checkpoint=str(last.resolve()), train_slices=n, pseudo_labels=len(pseudo))
            atomic_write_text(done, json.dumps(info, indent=1))
        current = Path(json.loads(done.read_text())["checkpoint"])
    return pseudo


def published_samples(cfg: SemiConfig, out: Path, unlabeled: list[Path], folder: Path | None) -> list[Sample]:
    """The authors' pseudo-labels paired with the unlabeled slices (manifest round 0, checkpoint 'published')."""
    if folder is None:
        raise InfnetError("--from-published needs --published-masks (folder of published pseudo-labels)")
    masks = index_by_stem(folder)
    manifest = Manifest(out / "manifest.jsonl")
    for p in unlabeled:
        if p.stem not in masks:
            raise InfnetError(f"{p}: no published pseudo-label with stem '{p.stem}' in {folder}")
        if manifest.done(p) is None:
            label = str(masks[p.stem].resolve())
            manifest.add(dict(round=0, image=str(p), label=label, checkpoint="published", seed=cfg.seed))
    return _pseudo_samples(unlabeled, manifest)


def two_step(cfg: SemiConfig, out: Path, pseudo: list[Sample], finetune: dict, progress: bool = True) -> Path:
    """Pre-train a fresh model on all pseudo-labels, then fine-tune it on the doctor labels (section III-D)."""
    pre = out / "pretrain"
    if not (pre / "done.json").is_file():
        images, masks = link_samples(pseudo, pre / "data")
        tcfg = _train_cfg(
            cfg, train_images=images, train_masks=masks, epochs=cfg.pretrain_epochs, encoder_weights=cfg.encoder_weights
        )
        if progress:
            print(f"pre-training on {len(pseudo)} pseudo-labeled slices")
        last = train_step(tcfg, pre / "run", progress=progress)
        atomic_write_text(pre / "done.json", json.dumps({"checkpoint": str(last.resolve())}, indent=1))
    pretrained = Path(json.loads((pre / "done.json").read_text())["checkpoint"])
    decay = cfg.finetune_decay_epoch or max(1, cfg.finetune_epochs * 3 // 4)
    recipe = dict(
        rates=cfg.finetune_rates,
        batch_size=cfg.finetune_batch_size,
        decay_epoch=decay,
        train_size=cfg.finetune_size,
    )
    recipe = {k: v for k, v in recipe.items() if v is not None}  # unset: the shared value
    tcfg = _train_cfg(cfg, epochs=cfg.finetune_epochs, **finetune, **recipe)
    if progress:
        print("fine-tuning on the doctor-labeled slices")
    train_step(tcfg, out / "finetune" / "run", init=pretrained, progress=progress)
    best = (out / "finetune" / "run" / "best.safetensors").resolve()
    atomic_write_text(out / "result.json", json.dumps({"checkpoint": str(best), "model": cfg.model}, indent=1))
    return best


def run_semi(cfg: SemiConfig, out: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Run Semi-Inf-Net (or the published-label two-step training) into ``out``; returns the final checkpoint."""
    out = Path(out)
    cfg = _start(cfg, out, resume)
    labeled, unlabeled, published, finetune = _sources(cfg)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "semi.json", cfg.to_json())
    if cfg.from_published:
        pseudo = published_samples(cfg, out, unlabeled, published)
    else:
        pseudo = run_algorithm(cfg, out, labeled, unlabeled, progress=progress)
    return two_step(cfg, out, pseudo, finetune, progress=progress)
