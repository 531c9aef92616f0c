"""The runs behind benchmarks/reproduce.md: one spec per key (task, table group, run directory, training command).

``{data}`` in a command stands for the COVID-SemiSeg root; ``run`` and ``time_root(s)`` are relative to runs/.
"""

from __future__ import annotations

LUNG_TEST = "Dataset/TestingSet/LungInfection-Test"
TEST_ARGS = f"--test-images {{data}}/{LUNG_TEST}/Imgs --test-masks {{data}}/{LUNG_TEST}/GT"
B10 = "--epochs 10 --decay-epoch 8 --batch-size 4 --rates 1.0 --augment --seed 0"


def _budget(task: str, model: str, paper: str | None) -> dict:
    """A run at the shared short budget ``B10``: binary (``b10-``) or multi-class (``mc10-``)."""
    if task == "binary":
        group = "Baselines, same budget (10 epochs, 352, single scale, batch 4, augmentation)"
        run, command = f"b10-{model}", f"infnet train --out runs/b10-{model} --model {model} {B10} {TEST_ARGS}"
    else:
        group = "Multi-class, same budget (10 epochs, 352, single scale, batch 4, flips); all get the infection prior"
        run, command = f"mc10-{model}", f"infnet multiclass train --out runs/mc10-{model} --model {model} {B10}"
    return dict(task=task, group=group, run=run, paper=paper, command=command)


def _b10(model: str, paper: str | None) -> dict:
    return _budget("binary", model, paper)


def _mc10(model: str, paper: str | None) -> dict:
    return _budget("multiclass", model, paper)


MC = "Multi-class FCN8s guided by an infection map (the paper: Semi-Inf-Net + FCN8s)"
MC_UNET = "Multi-class U-Net guided by an infection map (full-resolution decoder; the authors' Semi-Inf-Net + UNet)"
ENS3 = "infnet-effl2-semi-ens3-semiseg"  # the bundled seed ensemble (run semi-published-ft448-ens3)
DENSITY = (
    "Density split: GGO vs consolidation by local attenuation inside the infection map (ours; `-semiprior`: the "
    f"prior from `infnet-effl2-semi-semiseg`, `-ens3prior`: from `{ENS3}`)"
)


def _density(run: str, infection_model: str | None = None) -> dict:
    """A density split (``infnet multiclass fit-density``: a logistic regression on the grey level and its blurs,
    fitted on the training slices' labels in seconds), evaluated with ``infection_model``'s prior if given."""
    command = f"infnet multiclass fit-density --out runs/{run} --seed 0"
    if infection_model:
        command += (
            f" && infnet multiclass evaluate --model runs/{run}/best.safetensors --infection-model {infection_model} "
            f"--out runs/{run}/eval-multiclass-{infection_model}"
        )
    spec = dict(task="multiclass", group=DENSITY, run=run, paper=None, command=command)
    return spec | ({"infection_model": infection_model} if infection_model else {})


SEMI = "Semi-Inf-Net (two-step: pre-train on 1600 pseudo-labels, fine-tune on the 45 doctor labels)"


def _semi(run: str, args: str) -> dict:
    """A two-step Semi-Inf-Net run (``infnet semi``); its final model is the fine-tuning step's best."""
    return dict(
        task="binary",
        group=SEMI,
        run=f"{run}/finetune/run",
        time_root=run,
        paper="Semi-Inf-Net",
        command=f"infnet semi --out runs/{run} {args} --augment --seed 0",
    )


# The first Semi-Inf-Net runs' fine-tuning (the `infnet semi` default before it became the labeled-set recipe).
FT20 = "--finetune-epochs 20 --finetune-rates 1 --finetune-batch-size 8 --finetune-decay-epoch 10"


def _ft_schedule(size: int = 352, seed: int = 0) -> str:
    """`infnet train` options of the labeled-set recipe used to fine-tune pre-trained Semi-Inf-Net models."""
    epochs, decay = (30, 22) if size == 352 else (26, 20)
    size_arg = "" if size == 352 else f"--train-size {size} "
    return (
        f"--epochs {epochs} --decay-epoch {decay} --batch-size 4 {size_arg}--rates 0.75 1 1.25 --augment --seed {seed}"
    )


FT30 = _ft_schedule()
PUBLISHED = f"--from-published --model infnet-effl2 --pretrain-epochs 2 {FT20}"  # the semi-published run


def _semi_ft(base: str, args: str, roots: list[str], size: int = 352, seed: int = 0) -> dict:
    """The pre-trained model of Semi-Inf-Net run ``base``, fine-tuned with the labeled-set model's recipe
    (multi-scale, batch 4) instead of ``base``'s 20 single-scale epochs: 30 epochs (run ``{base}-ft30``), or at
    another ``size`` 26 epochs with lr decay at 20 to fit a session (``{base}-ft{size}``); ``-s{seed}`` for
    seed != 0."""
    epochs = 30 if size == 352 else 26
    suffix = ("ft30" if size == 352 else f"ft{size}") + (f"-s{seed}" if seed else "")
    schedule = _ft_schedule(size, seed)
    return dict(
        task="binary",
        group=SEMI,
        run=f"{base}-{suffix}",
        time_roots=[*roots, f"{base}-{suffix}"],
        semi_root=base,
        semi_override=dict(
            finetune_epochs=epochs, finetune_rates=[0.75, 1.0, 1.25], finetune_batch_size=4, finetune_size=size
        ),
        paper="Semi-Inf-Net",
        command=f"infnet semi --out runs/{base} {args} --augment --seed 0 (its pre-training step) && "
        f"infnet train --out runs/{base}-{suffix} --model infnet-effl2 "
        f"--init-checkpoint runs/{base}/pretrain/run/last.safetensors {schedule}",
    )


def _mc_model_prior(
    run: str,
    option: str,
    schedule: str = "--epochs 60 --decay-epoch 40",
    temperature: str = "",
    seed: int = 0,
    model: str = "fcn8s-effl2",
) -> dict:
    """Multi-class ``model`` (FCN8s-EffL2, 60 epochs unless ``schedule``) with ``option``, selected with a model's
    val priors (made at the bundled model's temperature, or at ``temperature``: raw maps for soft priors)."""
    priors = f"runs/priors-labeled{'-t' + temperature if temperature else ''}"
    t_arg = f"--temperature {temperature} " if temperature else ""
    return dict(
        task="multiclass",
        group=MC if model.startswith("fcn8s") else MC_UNET,
        run=run,
        paper="Semi-Inf-Net_FCN8s_1100" if model.startswith("fcn8s") else "Semi-Inf-Net_UNet",
        command=f"infnet predict --model infnet-effl2-semiseg {t_arg}--input "
        f"{{data}}/Dataset/TrainingSet/MultiClassInfection-Train/Imgs --output {priors} && "
        f"infnet multiclass train --out runs/{run} --model {model} {schedule} "
        f"--batch-size 8 --augment {option} --val-priors {priors} --seed {seed}",
    )


MS = "--rates 0.75 1 1.25 --loss ce+dice"  # the shipped multi-class recipe's options (run mc-fcn8s-effl2-ms)
PRETRAIN_PRIORS = (
    f"infnet semi --out runs/semi-published {PUBLISHED} --augment --seed 0 (its pre-training step) && "
    "infnet predict --model runs/semi-published/pretrain/run/last.safetensors --input "
    "{data}/Dataset/TrainingSet/MultiClassInfection-Train/Imgs --output runs/priors-pretrain-mctrain && "
)


def _mc_pretrain_prior(run: str, option: str, temperature: str = "") -> dict:
    """Multi-class FCN8s-EffL2 trained on the pre-trained Semi-Inf-Net model's maps of the training slices (a model
    that never saw their doctor labels, so its maps err like an infection model's at inference) mixed with the GT
    prior; ``option`` adds to the multi-scale ce+dice recipe of ``mc-fcn8s-effl2-ms``."""
    spec = _mc_model_prior(
        run,
        f"{MS} --train-priors runs/priors-pretrain-mctrain {option}",
        temperature=temperature,
    )
    return dict(spec, command=PRETRAIN_PRIORS + spec["command"])


SPECS: dict[str, dict] = {
    "infnet-effl2": dict(
        task="binary",
        group="Inf-Net (labeled set only)",
        run="infnet-effl2",
        paper="Inf-Net",
        command="infnet train --out runs/infnet-effl2 --model infnet-effl2 --epochs 40 --decay-epoch 30 "
        "--batch-size 4 --augment --seed 0",
    ),
    "semi-published": _semi("semi-published", f"--from-published --model infnet-effl2 --pretrain-epochs 2 {FT20}"),
    "semi-k400": _semi(
        "semi-k400",
        "--init src/infnet/weights/infnet-effl2-semiseg.safetensors --k 400 --round-cap 100 --pretrain-epochs 1 "
        + FT20,
    ),
    "semi-published-ft30": _semi_ft("semi-published", PUBLISHED, ["semi-published/pretrain"]),
    "semi-published-ft448": _semi_ft("semi-published", PUBLISHED, ["semi-published/pretrain"], size=448),
    "semi-published-ft448-s1": _semi_ft("semi-published", PUBLISHED, ["semi-published/pretrain"], size=448, seed=1),
    "semi-published-ft448-s2": _semi_ft("semi-published", PUBLISHED, ["semi-published/pretrain"], size=448, seed=2),
    "semi-k400-ft30": _semi_ft(
        "semi-k400",
        "--init src/infnet/weights/infnet-effl2-semiseg.safetensors --k 400 --round-cap 100 --pretrain-epochs 1 "
        + FT20,
        ["semi-k400/rounds", "semi-k400/pretrain"],
    ),
    # One more pre-training epoch on the published pseudo-labels (3 in all) before the same fine-tuning. The
    # continuation was started for 10 epochs (lr decay at 8) and stopped after its first, whose checkpoint is used.
    "semi-published-p3-ft30": dict(
        task="binary",
        group=SEMI,
        run="semi-published-p3-ft30",
        time_roots=["semi-published/pretrain", "semi-published-pre10", "semi-published-p3-ft30"],
        semi_root="semi-published",
        semi_override=dict(
            pretrain_epochs=3, finetune_epochs=30, finetune_rates=[0.75, 1.0, 1.25], finetune_batch_size=4
        ),
        paper="Semi-Inf-Net",
        command=f"infnet semi --out runs/semi-published --from-published --model infnet-effl2 --pretrain-epochs 2 "
        f"{FT20} --augment --seed 0 (its pre-training step) && infnet train --out runs/semi-published-pre10 "
        "--model infnet-effl2 --init-checkpoint runs/semi-published/pretrain/run/last.safetensors "
        "--train-images runs/semi-published/pretrain/data/images --train-masks runs/semi-published/pretrain/data/masks "
        "--epochs 10 --decay-epoch 8 --batch-size 8 --rates 0.75 1 1.25 --augment --seed 0 (stopped after epoch 1, "
        "copied to epoch1.safetensors) && infnet train --out runs/semi-published-p3-ft30 --model infnet-effl2 "
        f"--init-checkpoint runs/semi-published-pre10/epoch1.safetensors {FT30}",
    ),
    # The three seeds of semi-published-ft448, each at its final epoch, averaged (the rule fixed before seed 2 ran).
    "semi-published-ft448-ens3": dict(
        task="binary",
        group="Semi-Inf-Net seed ensemble (ours: mean logits of the three seeds of `semi-published-ft448`)",
        run="semi-published-ft448-ens3",
        time_roots=["semi-published/pretrain", *(f"semi-published-ft448{s}" for s in ("", "-s1", "-s2"))],
        semi_root="semi-published",
        semi_override=dict(
            finetune_epochs=26, finetune_rates=[0.75, 1.0, 1.25], finetune_batch_size=4, finetune_size=448
        ),
        paper="Semi-Inf-Net",
        command="(semi-published-ft448 with --seed 0, 1 and 2) && infnet ensemble --members "
        "runs/semi-published-ft448/last.safetensors runs/semi-published-ft448-s1/last.safetensors "
        "runs/semi-published-ft448-s2/last.safetensors --out runs/semi-published-ft448-ens3",
    ),
    "semi-k400-alg1": dict(
        task="binary",
        group="Semi-Inf-Net, Algorithm 1 only (the model after the last pseudo-labelling round, no two-step)",
        run="semi-k400/rounds/r003/run",
        time_root="semi-k400/rounds",
        paper="Semi-Inf-Net",
        command="(the rounds of semi-k400: K=400, 3 fine-tuning rounds of 1 epoch on 100 slices each)",
    ),
    "b10-infnet-effl2": _b10("infnet-effl2", "Inf-Net"),
    "b10-unet-effl2": _b10("unet-effl2", "UNet"),
    "b10-unetpp-effl2": _b10("unetpp-effl2", "UNet++"),
    "b10-deeplabv3p-os8-effl2": _b10("deeplabv3p-os8-effl2", None),
    "b10-deeplabv3p-os16-effl2": _b10("deeplabv3p-os16-effl2", None),
    "b10-fcn8s-effl2": _b10("fcn8s-effl2", None),
    "mc-fcn8s-effl2": dict(
        task="multiclass",
        group=MC,
        run="mc-fcn8s-effl2",
        paper="Semi-Inf-Net_FCN8s_1100",
        command="infnet multiclass train --out runs/mc-fcn8s-effl2 --model fcn8s-effl2 --epochs 60 --decay-epoch 40 "
        "--batch-size 8 --augment --seed 0",
    ),
    "mc-fcn8s-effl2-pn": _mc_model_prior("mc-fcn8s-effl2-pn", "--prior-noise"),
    "mc-fcn8s-effl2-dice": _mc_model_prior("mc-fcn8s-effl2-dice", "--loss ce+dice"),
    "mc-fcn8s-effl2-ms": _mc_model_prior("mc-fcn8s-effl2-ms", MS),
    "mc-fcn8s-effl2-ms-mp": _mc_pretrain_prior("mc-fcn8s-effl2-ms-mp", "--gt-prior-rate 0.5"),
    "mc-fcn8s-effl2-ms-mps": _mc_pretrain_prior(
        "mc-fcn8s-effl2-ms-mps", "--gt-prior-rate 0.5 --soft-prior", temperature="1"
    ),
    "mc-fcn8s-effl2-ms-s1": _mc_model_prior("mc-fcn8s-effl2-ms-s1", MS, seed=1),
    # All 50 labelled slices (train + val), no validation: the final epoch is the model.
    "mc-fcn8s-effl2-ms-tv": _mc_model_prior("mc-fcn8s-effl2-ms-tv", f"{MS} --train-split trainval --val-split none"),
    "mc-fcn8s-effl2-ms-rot": _mc_model_prior("mc-fcn8s-effl2-ms-rot", f"{MS} --rotate 15"),
    "mc-fcn8s-effl2-512": _mc_model_prior(
        "mc-fcn8s-effl2-512", "--train-size 512 --loss ce+dice", "--epochs 40 --decay-epoch 30"
    ),
    "mc-unet-effl2-ms40": _mc_model_prior("mc-unet-effl2-ms40", MS, "--epochs 40 --decay-epoch 30", model="unet-effl2"),
    "mc-density-split": _density("mc-density-split"),
    "mc-density-split-semiprior": _density("mc-density-split", infection_model="infnet-effl2-semi-semiseg"),
    "mc-density-split-ens3prior": _density("mc-density-split", ENS3),
    "mc10-fcn8s-effl2": _mc10("fcn8s-effl2", "Semi-Inf-Net_FCN8s_1100"),
    "mc10-fcn8s-vgg16": _mc10("fcn8s-vgg16", "Semi-Inf-Net_FCN8s_1100"),
    "mc10-unet-effl2": _mc10("unet-effl2", "Semi-Inf-Net_UNet"),
    "mc10-unetpp-effl2": _mc10("unetpp-effl2", None),
    "mc10-deeplabv3p-os8-effl2": _mc10("deeplabv3p-os8-effl2", "DeepLabV3Plus_Stride8"),
    "mc10-deeplabv3p-os16-effl2": _mc10("deeplabv3p-os16-effl2", "DeepLabV3Plus_Stride16"),
}
