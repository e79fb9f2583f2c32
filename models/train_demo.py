"""Train the bundled tiny video model on bouncing shapes (``pomexport train-demo``).

The objective is rectified flow, per frame, teacher-forced: every frame of a clip gets its
own noise level ``t``, ``x_t = (1 - t) x0 + t eps``, and the model predicts ``v = eps - x0``
while reading the state of the *clean* frames before it — exactly what frame-by-frame
generation computes after committing each finished frame with ``t = 0``. Labels are dropped
to ``null_label`` now and then for classifier-free guidance. Clips start at a random frame
offset some of the time, so that frame indices past the training length stay trained.

Deterministic by seed: the model init, the data stream and the noise each come from their
own seeded generator, and deterministic algorithms are enforced. What ships is the EMA of
the weights.

Run ``python -m pomexport.models.train_demo --help`` or ``pomexport train-demo --help``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from pomexport.errors import ConfigError
from pomexport.export.artifact.atomic import atomic_write
from pomexport.models.config import PoMDiTConfig
from pomexport.models.demo_data import BouncingShapes
from pomexport.models.pom_dit import PoMDiT
from pomexport.models.presets import TINY
from pomexport.models.registry import load_model
from pomexport.models.weights import save_weights

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a demo training run (the defaults made the bundled model)."""

    steps: int = 18000
    batch: int = 8
    frames: int = 16
    lr: float = 1e-3
    warmup: int = 100
    decay_frac: float = 0.3  # final fraction of the steps over which lr falls linearly to 0
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    label_dropout: float = 0.1
    offset_prob: float = 0.25  # fraction of clips that start at a random frame index
    max_offset: int = 48
    # 0: t uniform per frame (as in Diffusion Forcing). A frame's position can only come from
    # the state when t is near 1; the logit-normal of SD3 (std 1) puts 1.4 % of frames above
    # t = 0.9, uniform 10 %.
    t_logit_std: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 100
    threads: int = 0  # 0: leave torch's default
    model: PoMDiTConfig = field(default_factory=lambda: TINY)
    # Weights to start from (bundled name or file; see ``load_model``) instead of a random
    # ``model``: fine-tuning, e.g. on longer clips. Their own config replaces ``model``.
    init: str | None = None
    # Stationary state (set on the model's config, also over an ``init``'s): the commit
    # decay and the bound of the frame-index embedding; None keeps the model's own.
    decay: float | None = None
    max_frame_index: int | None = None
    # Context frames are committed as ``(1 - s) x0 + s eps`` with s ~ U[0, context_noise]
    # per frame (still labelled t = 0): the model learns to read states of imperfect frames,
    # as in a long rollout of its own samples. 0: clean context, the stream not drawn from.
    context_noise: float = 0.0
    # Self-made context: for this fraction of clips the committed frames are the model's own
    # one-step denoised estimates ``x0_hat = x_s - s v(x_s)`` from ``s ~ U[0, self_context_t]``
    # (one no-grad teacher-forced pass), so it learns to correct the kind of errors its own
    # frames carry instead of copying them forward through the state. 0: off.
    self_context: float = 0.0
    self_context_t: float = 0.5

    def __post_init__(self) -> None:
        if min(self.steps, self.batch, self.frames) < 1 or self.lr < 0:
            raise ConfigError(
                "--steps, --batch, --frames and --lr must be positive (--lr 0: frozen)"
            )


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Warm-up, stable, decay: linear warm-up, constant, then linear to 0 over the last
    ``decay_frac`` of ``cfg.steps``.

    The decay is what turns a noisy constant-lr iterate into sharp samples at the end of a
    fixed budget; ``decay_frac=0`` keeps the lr constant, so that a checkpoint at step N of
    a long run is bit-identical to a run with ``--steps N``.
    """
    lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
    decay_start = cfg.steps * (1.0 - cfg.decay_frac)
    if cfg.decay_frac > 0 and step >= decay_start:
        lr *= max(0.0, (cfg.steps - step) / (cfg.steps - decay_start))
    return lr


def sample_t(shape: tuple[int, ...], std: float, generator: torch.Generator) -> torch.Tensor:
    """Flow times in (0, 1): logit-normal (SD3) when ``std > 0``, else uniform."""
    if std <= 0:
        return torch.rand(shape, generator=generator)
    return torch.sigmoid(std * torch.randn(shape, generator=generator))


def frame_indices(batch: int, frames: int, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """(B, F) frame indices: ``offset + arange(F)``, offset 0 or uniform in [1, max_offset]."""
    offset = torch.randint(1, cfg.max_offset + 1, (batch, 1), generator=gen)
    use = torch.rand(batch, 1, generator=gen) < cfg.offset_prob
    return torch.where(use, offset, 0) + torch.arange(frames)


def flow_loss(
    model: PoMDiT,
    clean: torch.Tensor,
    label: torch.Tensor,
    cfg: TrainConfig,
    gen: torch.Generator,
) -> torch.Tensor:
    """Teacher-forced per-frame flow-matching MSE on clean clips (B, F, C, H, W)."""
    b, f = clean.shape[:2]
    t = sample_t((b, f), cfg.t_logit_std, gen)
    eps = torch.randn(clean.shape, generator=gen)
    drop = torch.rand(b, generator=gen) < cfg.label_dropout
    cond = torch.where(drop, model.null_label, label)
    index = frame_indices(b, f, cfg, gen)
    tt = t.view(b, f, 1, 1, 1)
    x_t = (1 - tt) * clean + tt * eps
    context = clean
    if cfg.self_context > 0:
        context = self_made_context(model, clean, cond, index, cfg, gen)
    if cfg.context_noise > 0:
        s = cfg.context_noise * torch.rand(b, f, 1, 1, 1, generator=gen)
        context = (1 - s) * clean + s * torch.randn(clean.shape, generator=gen)
    v = model.forward_teacher_forced(x_t, t, context, cond, index)
    return (v - (eps - clean)).square().mean()


@torch.no_grad()
def self_made_context(
    model: PoMDiT,
    clean: torch.Tensor,
    cond: torch.Tensor,
    index: torch.Tensor,
    cfg: TrainConfig,
    gen: torch.Generator,
) -> torch.Tensor:
    """Clean clips (B, F, C, H, W) with the frames of ``self_context`` of the clips replaced
    by the model's own denoised estimates (see :class:`TrainConfig`)."""
    b, f = clean.shape[:2]
    s = cfg.self_context_t * torch.rand(b, f, generator=gen)
    x_s = (1 - s.view(b, f, 1, 1, 1)) * clean + s.view(b, f, 1, 1, 1) * torch.randn(
        clean.shape, generator=gen
    )
    v = model.forward_teacher_forced(x_s, s, clean, cond, index)
    estimate = x_s - s.view(b, f, 1, 1, 1) * v
    use = (torch.rand(b, generator=gen) < cfg.self_context).view(b, 1, 1, 1, 1)
    return torch.where(use, estimate, clean)


@torch.no_grad()
def ema_update(ema: PoMDiT, model: PoMDiT, step: int, decay: float) -> None:
    """EMA with the usual warm-up, so early steps are not dominated by the random init."""
    d = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1 - d)


def _save(ema: PoMDiT, out: Path, info: dict) -> None:
    save_weights(ema, out, metadata={"pomexport.train": json.dumps(info)})
    text = json.dumps(info, indent=2) + "\n"
    atomic_write(out.with_suffix(".json"), lambda tmp: tmp.write_text(text))


def _info(cfg: TrainConfig, step: int, loss: float, seconds: float) -> dict:
    hyper = {k: v for k, v in asdict(cfg).items() if k != "model"}
    info = {"step": step, "ema_loss": loss, "seconds": round(seconds, 1), "train": hyper}
    if cfg.init is not None:
        # Provenance: how the weights this run started from were made (a chain of stages).
        info["init_info"] = training_info(cfg.init)
    return info


def training_info(model: str) -> dict | None:
    """The training record stored in a weights file (bundled name or path), or None."""
    from pomexport.models.registry import BUNDLED, bundled_path
    from pomexport.models.weights import read_state_dict

    path = bundled_path(model) if model in BUNDLED else Path(model)
    _, meta = read_state_dict(path)
    return json.loads(meta["pomexport.train"]) if "pomexport.train" in meta else None


@dataclass(frozen=True)
class TrainedRanges:
    """The largest values training fed the model's stream inputs (every stage): the
    frame-index embedding's input and the count the PolyMixer reads (after the decay)."""

    frame_index: int
    mixer_count: float


def trained_ranges(info: dict, model: PoMDiTConfig) -> TrainedRanges:
    """What a model of config ``model`` trained as ``info`` says (see ``_info``) has seen:
    clips of ``frames`` frames from an empty state, indices offset by up to ``max_offset``
    (when ``offset_prob > 0``), clamped at ``max_frame_index``; the count read at the last
    frame of a clip, ``decay * c_d(frames - 1)``."""
    stages, index = [], 0
    while info is not None:
        stages.append(info["train"])
        info = info.get("init_info")
    for train in stages:
        offset = train.get("max_offset", 0) if train.get("offset_prob", 0) > 0 else 0
        seen = train["frames"] - 1 + offset
        bound = train.get("max_frame_index")
        index = max(index, seen if bound is None else min(seen, bound))
    last = stages[0]  # the final stage made the shipped weights and their decay
    n, d, f = model.tokens_per_frame, model.decay, last["frames"] - 1
    count = n * f if d == 1.0 else d * n * (1 - d**f) / (1 - d)
    return TrainedRanges(index, count)


def check_weights_out(out: str | Path | None) -> None:
    """ConfigError unless ``out`` (None: no file) names a .safetensors file."""
    if out is not None and Path(out).suffix != ".safetensors":
        raise ConfigError(f"--out must end in .safetensors, got {Path(out).name!r}")


def train(cfg: TrainConfig, out: str | Path | None = None, progress: bool = True) -> PoMDiT:
    """Train from scratch (or from ``cfg.init``); return the EMA model. With ``out``,
    checkpoint there periodically.

    ``out`` gets the EMA weights (safetensors, training info in its metadata) and a JSON
    twin with the same info next to it.
    """
    from tqdm import tqdm

    check_weights_out(out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(cfg.seed)
    model = (PoMDiT(cfg.model) if cfg.init is None else load_model(cfg.init)).train()
    stationary = {"decay": cfg.decay, "max_frame_index": cfg.max_frame_index}
    model.cfg = model.cfg.replace(**{k: v for k, v in stationary.items() if v is not None})
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    data = BouncingShapes(cfg.batch, cfg.frames, seed=cfg.seed)
    noise = torch.Generator().manual_seed(cfg.seed + 1)
    start, smooth = time.time(), None
    bar = tqdm(range(cfg.steps), disable=not progress, desc="train-demo", mininterval=5)
    for step in bar:
        clean, label = next(data)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = flow_loss(model, clean, label, cfg, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        ema_update(ema, model, step, cfg.ema_decay)
        smooth = loss.item() if smooth is None else 0.98 * smooth + 0.02 * loss.item()
        bar.set_postfix(loss=f"{smooth:.4f}", lr=f"{lr_at(step, cfg):.2e}")
        done = step + 1
        if out is not None and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            _save(ema, Path(out), _info(cfg, done, smooth, time.time() - start))
            logger.info("step %d: loss %.4f, checkpoint %s", done, smooth, out)
    return ema


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pomexport.models.train_demo", description=__doc__.splitlines()[0]
    )
    defaults = TrainConfig()
    for name in ("steps", "batch", "frames", "seed", "threads", "checkpoint_every"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("max_frame_index",):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    for name in ("decay", "context_noise", "offset_prob", "self_context", "self_context_t"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    for name in ("lr", "ema_decay", "decay_frac"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    p.add_argument("--out", type=Path, required=True, help="weights file to write (.safetensors)")
    p.add_argument("--init", default=None, help="weights to start from (bundled name or file)")
    return p


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point of ``python -m pomexport.models.train_demo``."""
    args = vars(_parser().parse_args(argv))
    out = args.pop("out")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train(TrainConfig(**args), out)


if __name__ == "__main__":
    main()
