"""Evaluation of an embedding-route model folder (``python -m training.evaluate --model OUT/model
--data SESSION --metric retrieval,lowlevel``).

The session's test trials (its ``test`` images, which training never chose anything on) go
through the model folder's own decoder and low-level head (:class:`dd_live.decoders.EmbeddingModel`,
as live). Metrics, each single-trial and with the repetitions of each test image averaged
first, and each beside the same metric with shuffled labels measured in the same run:

- ``retrieval``: n-way identification among the test images (``top1``, ``top5``; ``n_way`` =
  the number of test images): the decoded vector ranks the test images' embeddings (the
  model's gallery, centred cosine as live);
- ``two_way``: 2-way identification in the embedding space (the fraction of other test images
  the true one outscores);
- ``lowlevel``: ``pixcorr`` (pixel correlation) and ``ssim`` (grey, Gaussian window) of the
  low-level pictures against the ground-truth images at the picture's size.

Shuffled labels: the trials' true images permuted (the same permutation for every metric).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from dd_live.decoders import EmbeddingModel
from dd_live.decoders.gallery import centred_unit
from dd_live.errors import ConfigError
from training.metrics import grey, identification, pixcorr, ssim

logger = logging.getLogger(__name__)

METRICS = ("retrieval", "lowlevel")
RESULTS = "results.json"


def gallery_rows(model: EmbeddingModel, keys: list[str], paths: list[Path]) -> np.ndarray:
    """``[n, dim]`` embeddings of the images (content hashes ``keys``) from the model's gallery,
    else made by the model's image embedder (``image_embedder.json``)."""
    table = {}
    if model.gallery is not None:
        table = {p.name.split(".")[0]: e for p, e in zip(model.gallery.paths, model.gallery.embeddings,
                                                          strict=True)}
    missing = [i for i, k in enumerate(keys) if k[:16] not in table]
    rows = np.zeros((len(keys), model.embedder.dim), np.float32)
    for i, k in enumerate(keys):
        if k[:16] in table:
            rows[i] = table[k[:16]]
    if missing:
        import torch

        from training.models import IMAGE_EMBEDDER_FILE, load_image_embedder

        if model.folder is None or not (model.folder / IMAGE_EMBEDDER_FILE).is_file():
            raise ConfigError(f"{len(missing)} test images are not in the model's gallery and it has no "
                              f"{IMAGE_EMBEDDER_FILE} to embed them; evaluate on the session it was trained on")
        clip_model, preprocess = load_image_embedder(model.folder)
        with torch.no_grad():
            for i in missing:
                with Image.open(paths[i]) as image:
                    rows[i] = clip_model.encode_image(preprocess(image.convert("RGB"))[None])[0].float().numpy()
    return rows


def evaluate_embedding_model(model_dir: Path, data: str | None, metrics: tuple[str, ...], output_dir: Path,
                             average_repeats: bool = True, seed: int = 2022, split: str = "test") -> dict:
    """Write ``results.json`` (see the module docstring) and return it."""
    from training.data.calibration import CalibrationPairs, is_calibration_data

    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"--metric {','.join(unknown)}: an embedding-route model is evaluated with "
                          f"{','.join(METRICS)}")
    if data is None or not is_calibration_data(data):
        raise ConfigError(f"--data {data}: give the calibration session (or a folder of them) to evaluate "
                          "an embedding-route model on")
    model = EmbeddingModel.load(model_dir)
    trials = CalibrationPairs(data, split, model.n_channels, model.n_times)
    labels = np.asarray(trials.labels)
    images = sorted(set(labels.tolist()))
    if len(images) < 2:
        raise ConfigError(f"evaluation needs at least 2 {split} images, the data has {len(images)}")
    truth = np.array([images.index(i) for i in labels])  # [n_trials] -> candidate index
    shuffle = np.random.default_rng(seed).permutation(len(truth))
    averaged_eeg = np.stack([trials.eeg[labels == i].mean(0) for i in images]).astype(np.float32)
    views = {"single_trial": (trials.eeg, truth), "averaged": (averaged_eeg, np.arange(len(images)))}
    results: dict = {"metric": ",".join(metrics), "split": split, "data": str(data),
                     "model": str(model_dir), "decoder": model.decoder_name, "embedder": model.embedder.id}
    if "retrieval" in metrics:
        keys = [trials.image_keys[i] for i in images]
        center = model.gallery.center if model.gallery is not None else None
        gallery = centred_unit(gallery_rows(model, keys, [trials.image_paths[i] for i in images]), center)
        retrieval, two_way = {"n_way": len(images)}, {"chance": 0.5}
        for view, (eeg, target) in views.items():
            vectors = np.stack([model.encode(x) for x in eeg])  # [n, dim]
            scores = centred_unit(vectors, center) @ gallery.T  # [n, n_way]
            real = identification(scores, target)
            order = shuffle if view == "single_trial" else np.random.default_rng(seed).permutation(len(target))
            fake = identification(scores, target[order])
            retrieval[view] = {"top1": real["top1"], "top5": real["top5"], "n_trials": int(len(target)),
                               "shuffled_top1": fake["top1"], "shuffled_top5": fake["top5"]}
            two_way[view] = {"accuracy": real["two_way"], "shuffled": fake["two_way"]}
        head = retrieval["averaged" if average_repeats else "single_trial"]
        retrieval.update(head, averaged_repeats=bool(average_repeats),
                         chance_top1=1 / len(images), chance_top5=min(5, len(images)) / len(images))
        two_way.update(two_way["averaged" if average_repeats else "single_trial"])
        results["retrieval"], results["two_way"] = retrieval, two_way
        logger.info("%d-way retrieval: top-1 %.3f (shuffled %.3f, chance %.3f), 2-way %.3f (shuffled %.3f)",
                    len(images), retrieval["top1"], retrieval["shuffled_top1"], retrieval["chance_top1"],
                    two_way["accuracy"], two_way["shuffled"])
    if "lowlevel" in metrics:
        if model.lowlevel_head is None:
            raise ConfigError(f"{model_dir} has no low-level head (lowlevel/); evaluate --metric retrieval")
        lowlevel: dict = {}
        for view, (eeg, target) in views.items():
            pictures = np.stack([np.asarray(model.lowlevel(x).picture, np.float32) / 255 for x in eeg])
            size = pictures.shape[1:3]
            ground = []
            for i in images:
                with Image.open(trials.image_paths[i]) as image:
                    ground.append(np.asarray(image.convert("RGB").resize(size[::-1], Image.Resampling.BICUBIC),
                                             np.float32) / 255)
            ground = np.stack(ground)
            order = shuffle if view == "single_trial" else np.random.default_rng(seed).permutation(len(target))
            real, fake = ground[target], ground[target[order]]
            lowlevel[view] = {"pixcorr": pixcorr(pictures, real), "ssim": ssim(grey(pictures), grey(real)),
                              "shuffled_pixcorr": pixcorr(pictures, fake),
                              "shuffled_ssim": ssim(grey(pictures), grey(fake)), "n_trials": int(len(target))}
        lowlevel.update(lowlevel["averaged" if average_repeats else "single_trial"])
        results["lowlevel"] = lowlevel
        logger.info("low-level: PixCorr %.3f (shuffled %.3f), SSIM %.3f (shuffled %.3f)", lowlevel["pixcorr"],
                    lowlevel["shuffled_pixcorr"], lowlevel["ssim"], lowlevel["shuffled_ssim"])
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / RESULTS).write_text(json.dumps(results, indent=1))
    return results
