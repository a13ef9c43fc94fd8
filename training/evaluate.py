"""Evaluation of a fine-tuned model folder. ``python -m training.evaluate --help``.

For each EEG of a split: ``samples`` images are generated; metrics (``results.json``):

- n-way top-k accuracy as the reference computes it: an ImageNet classifier scores the ground
  truth and each sample; the "true" class is the classifier's own top class on the ground
  truth; in each of ``trials`` trials it competes with ``n_way - 1`` other random classes on the
  sample's scores. Mean over samples (and the mean of each EEG's best sample, "max");
- CLIP similarity (cosine) between each sample and its ground truth;
- ``grid.png``: rows of ground truth beside its samples.

``--metric retrieval`` (no images are generated): n-way zero-shot retrieval among the held-out
images: each test EEG's image-embedding vector (the conditioner's CLIP head) ranks the embeddings
(by the image embedder the model was trained against) of all test images; top-1/top-5 accuracy
of the true image, under ``retrieval: {top1, top5, n_way, n_trials}`` in ``results.json``, and
``retrieval_matrix.png`` (mean similarity of each true image's EEG to each gallery image).
``--data`` evaluates other data than the training run's (e.g. a calibration session folder).

An embedding-route model folder (``python -m training.decoder``) is evaluated with
``--metric retrieval,lowlevel`` (see :mod:`training.evaluate_embedding`).
"""

import argparse
import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate.utils import gather_object
from PIL import Image

from dd_live.decoders import is_embedding_model
from dd_live.errors import ConfigError
from dd_live.generate import ImageGenerator
from dd_live.model import load
from training.common import CONFIG_FILE, make_accelerator
from training.config import FinetuneConfig, load_config
from training.finetune import CONDITIONER, build_paired
from training.metrics import build_classifier, classify, clip_embed, n_way_top_k
from training.models import build_clip, image_embedding_mean, load_image_embedder

logger = logging.getLogger(__name__)

RESULTS = "results.json"
GRID = "grid.png"
RETRIEVAL_PLOT = "retrieval_matrix.png"
METRICS = ("generation", "retrieval")
RETRIEVAL_TOP_K = (1, 5)


@dataclass(frozen=True)
class EvaluateConfig:
    """What to evaluate and how (the reference: 5 samples, 50-way top-1, 50 trials, seed 2022)."""

    split: str = "test"
    samples: int = 5
    n_way: int = 50
    top_k: int = 1
    trials: int = 50
    limit: int | None = None
    scheduler: str = "plms"
    num_inference_steps: int = 250
    classifier: str = "vit_h_14"
    classifier_weights: str | None = None
    grid_rows: int = 8
    seed: int = 2022

    def __post_init__(self) -> None:
        for name in ("samples", "n_way", "top_k", "trials", "num_inference_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"EvaluateConfig.{name} must be >= 1, got {getattr(self, name)}")


def main(argv: list[str] | None = None) -> dict:
    """Evaluate; write ``results.json`` and ``grid.png`` in ``--output-dir``; return the results."""
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a model folder written by training.finetune")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--train-config", type=Path, default=None,
                        help=f"the fine-tuning {CONFIG_FILE} naming the data (default: beside --model)")
    parser.add_argument("--data", default=None,
                        help="evaluate on this data instead of the training run's: 'synthetic', "
                        "'imagenet-eeg' or a calibration session folder (or a folder of them)")
    parser.add_argument("--metric", default=None,
                        help="generation: images + classifier/CLIP metrics; retrieval: n-way "
                        "zero-shot retrieval among the held-out images; an embedding-route model: "
                        "retrieval,lowlevel (its default)")
    parser.add_argument("--average-repeats", action=argparse.BooleanOptionalAction, default=True,
                        help="retrieval on calibration data: average the repetitions of each test "
                        "image first")
    defaults = EvaluateConfig()
    for name, value in asdict(defaults).items():
        kind = int if isinstance(value, int) or name == "limit" else str
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=value)
    args = parser.parse_args(argv)
    config = EvaluateConfig(**{name: getattr(args, name) for name in asdict(defaults)})
    if not args.model.is_dir():
        raise ConfigError(f"--model {args.model} is not a folder: give the model/ folder that "
                          "python -m training.finetune wrote (e.g. runs/ft/model)")
    if is_embedding_model(args.model):
        from training.evaluate_embedding import evaluate_embedding_model

        metrics = tuple(m.strip() for m in (args.metric or "retrieval,lowlevel").split(",") if m.strip())
        return evaluate_embedding_model(args.model, args.data, metrics, args.output_dir,
                                        args.average_repeats, config.seed, config.split)
    args.metric = args.metric or "generation"
    if args.metric not in METRICS:
        raise ConfigError(f"--metric {args.metric}: a DreamDiffusion model folder is evaluated with one of "
                          f"{', '.join(METRICS)}")
    train_config = load_config(FinetuneConfig, args.train_config or args.model.parent / CONFIG_FILE)
    if args.data is not None:
        train_config = replace(train_config, data=args.data)
    if args.metric == "retrieval":
        return evaluate_retrieval(args.model, train_config, config, args.output_dir, args.average_repeats)

    accelerator = make_accelerator("no", 1)
    device = accelerator.device
    conditioner = load(args.model / CONDITIONER).to(device)
    generator = ImageGenerator.from_pretrained(
        args.model, scheduler=config.scheduler, num_inference_steps=config.num_inference_steps,
        device=str(device), dtype="float32",
    ).prepare()
    enc = conditioner.config.encoder
    dataset = build_paired(train_config, config.split, enc.n_channels, enc.n_times)
    classifier, transform = build_classifier(config.classifier, config.classifier_weights)
    clip_model, preprocess = build_clip(train_config.clip_model, train_config.clip_pretrained, train_config.clip_config)
    indices = list(range(len(dataset) if config.limit is None else min(config.limit, len(dataset))))
    with accelerator.split_between_processes(indices) as mine:
        rows = [evaluate_item(config, dataset, index, conditioner, generator, classifier, transform,
                              clip_model, preprocess, device) for index in mine]
    rows = gather_object(rows)
    results = summarize(config, rows)
    if accelerator.is_main_process:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        (args.output_dir / RESULTS).write_text(json.dumps(results, indent=1))
        write_grid(rows[: config.grid_rows], args.output_dir / GRID)
        logger.info("%d-way top-%d accuracy %.3f (chance %.3f), CLIP similarity %.3f", config.n_way, config.top_k,
                    results["n_way_accuracy"], results["chance"], results["clip_similarity"])
    accelerator.end_training()
    return results


@torch.no_grad()
def evaluate_item(config, dataset, index, conditioner, generator, classifier, transform, clip_model, preprocess,
                  device) -> dict:
    """Generate ``samples`` images for EEG ``index`` and score them against its ground truth."""
    item = dataset[index]
    truth = dataset.load_image(item["image_id"])
    context = conditioner(item["eeg"][None].to(device))["context"]  # [1, 77, 768]
    seeds = [config.seed + index * config.samples + j for j in range(config.samples)]
    images = generator(context.expand(config.samples, -1, -1), seed=seeds).images
    scores = classify(classifier, transform, [truth, *images], device)  # [1 + samples, n_classes]
    true_class = int(scores[0].argmax())
    rng = np.random.default_rng([config.seed, index])
    accuracy = [n_way_top_k(s, true_class, config.n_way, config.trials, config.top_k, rng) for s in scores[1:]]
    embeds = clip_embed(clip_model, preprocess, [truth.resize(images[0].size), *images], device)
    similarity = (embeds[1:] @ embeds[0]).tolist()
    return {"index": index, "true_class": true_class, "accuracy": accuracy, "clip_similarity": similarity,
            "truth": truth, "images": images}


@torch.no_grad()
def evaluate_retrieval(model_dir: Path, train_config: FinetuneConfig, config: EvaluateConfig, output_dir: Path,
                       average_repeats: bool = True) -> dict:
    """n-way zero-shot retrieval among the test split's images; writes results.json and the plot."""
    conditioner = load(model_dir / CONDITIONER)
    clip_model, preprocess = load_image_embedder(model_dir)
    enc = conditioner.config.encoder
    dataset = build_paired(train_config, config.split, enc.n_channels, enc.n_times,
                           average_repeats=average_repeats)
    gallery = list(dataset.image_ids)  # the held-out images, [n_way]
    if len(gallery) < 2:
        raise ConfigError(f"retrieval needs at least 2 {config.split} images, the data has {len(gallery)}")
    pixels = torch.stack([preprocess(dataset.load_image(i)) for i in gallery])  # [n_way, 3, H, W]
    images = F.normalize(clip_model.encode_image(pixels).float(), dim=-1)  # [n_way, D]
    mean = image_embedding_mean(model_dir)  # the centring the targets had in training, if any
    if mean is not None:
        images = F.normalize(images - mean, dim=-1)
    eeg = torch.stack([dataset[i]["eeg"] for i in range(len(dataset))])  # [n_trials, C, T]
    vectors = F.normalize(conditioner(eeg)["clip"].float(), dim=-1)  # [n_trials, D]
    scores = (vectors @ images.T).numpy()  # [n_trials, n_way]
    truth = np.array([gallery.index(dataset.labels[i]) for i in range(len(dataset))])  # [n_trials]
    rank = (scores > scores[np.arange(len(truth)), truth][:, None]).sum(axis=1)  # 0 = best
    n_way = len(gallery)
    retrieval = {"n_way": n_way, "n_trials": int(len(truth)), "averaged_repeats": bool(average_repeats)}
    for k in RETRIEVAL_TOP_K:
        retrieval[f"top{k}"] = float((rank < k).mean())
        retrieval[f"chance_top{k}"] = min(k, n_way) / n_way
    matrix = np.stack([scores[truth == j].mean(axis=0) for j in range(n_way)])  # [n_way, n_way]
    results = {"metric": "retrieval", "split": config.split, "data": train_config.data,
               "retrieval": retrieval, "matrix": matrix.tolist()}
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / RESULTS).write_text(json.dumps(results, indent=1))
    write_retrieval_plot(matrix, output_dir / RETRIEVAL_PLOT, retrieval)
    logger.info("%d-way zero-shot retrieval over %d trials: top-1 %.3f (chance %.3f), top-5 %.3f",
                n_way, len(truth), retrieval["top1"], retrieval["chance_top1"], retrieval["top5"])
    return results


def write_retrieval_plot(matrix: np.ndarray, path: Path, retrieval: dict) -> None:
    """The retrieval matrix as a PNG: matplotlib when installed, else a plain PIL heat map."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        low, high = float(matrix.min()), float(matrix.max())
        scaled = ((matrix - low) / max(high - low, 1e-12) * 255).astype(np.uint8)
        cell = max(1, 256 // len(matrix))
        Image.fromarray(scaled).resize((cell * len(matrix),) * 2, Image.Resampling.NEAREST).save(path)
        return
    fig, ax = plt.subplots(figsize=(5, 4.5))
    shown = ax.imshow(matrix, cmap="viridis")
    ax.set_xlabel("gallery image")
    ax.set_ylabel("true image (its EEG)")
    ax.set_title(f"{retrieval['n_way']}-way retrieval: top-1 {retrieval['top1']:.2f}, "
                 f"top-5 {retrieval['top5']:.2f}")
    fig.colorbar(shown, ax=ax, label="cosine similarity")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summarize(config: EvaluateConfig, rows: list[dict]) -> dict:
    accuracy = np.array([row["accuracy"] for row in rows])  # [n_eeg, samples]
    similarity = np.array([row["clip_similarity"] for row in rows])
    return {
        "config": asdict(config),
        "n_eeg": len(rows),
        "n_way_accuracy": float(accuracy.mean()),
        "n_way_accuracy_max": float(accuracy.max(axis=1).mean()),
        "chance": config.top_k / config.n_way,
        "clip_similarity": float(similarity.mean()),
        "per_eeg": [{"index": r["index"], "true_class": r["true_class"], "accuracy": r["accuracy"],
                     "clip_similarity": r["clip_similarity"]} for r in rows],
    }


def write_grid(rows: list[dict], path: Path) -> None:
    """Each row: ground truth, then its samples (all resized to the samples' size)."""
    size = rows[0]["images"][0].size
    n_columns = 1 + len(rows[0]["images"])
    grid = Image.new("RGB", (size[0] * n_columns, size[1] * len(rows)), "white")
    for r, row in enumerate(rows):
        for c, image in enumerate([row["truth"].resize(size), *row["images"]]):
            grid.paste(image, (c * size[0], r * size[1]))
    grid.save(path)


if __name__ == "__main__":
    from training.common import run_command

    run_command(main)
