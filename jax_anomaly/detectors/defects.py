"""Synthetic defects (after DRAEM's discriminative network, Zavrtanik et al. 2021): a
segmentation network learns, on normal images only, to find defects pasted into them; a test
image's anomaly map is the network's per-pixel defect probability, its score the map's
maximum after smoothing.

Training reads nothing but the normal rows: each step makes its own defects on the device
(``synthetic_defects``). A defect's shape is a level set of smooth random noise (bilinear
upsampling of a Gaussian grid at a random coarseness: Perlin-like): the region above a
random level (a blob, as a blowhole or a break) or a thin band around level zero (a line, as
a crack). Inside it the pixels become a darker or brighter copy of the image itself or of
another image of the batch, blended with the original by a random share. Half the images of
a step get a defect, half stay normal; the loss is the cross-entropy of every pixel, defect
and normal pixels weighted equally.

The network that learned to tell pasted defects from normal texture also describes that
texture: a second, gradient-free phase (``bank``) passes the training images through its
deepest levels once and keeps every patch's features (the levels' outputs joined on the
finest of their grids, box-averaged); a test image's score is its patch farthest from every
bank patch (exact nearest-neighbour distances, blocked matrix products, each over its grid
position's typical distance; the mean over its ``bank_top`` farthest patches), as PatchCore
scores with pretrained features. The map is the segmenter's probability (it outlines defects
better than the coarse patch grid) times the square root of the bank distance upsampled to
the pixels (``bank_map``); ``segmenter`` is the probability's maximum, the score with ``bank_levels=0``.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from jax_anomaly.config import TrainConfig, replace
from jax_anomaly.detectors.base import Detector, Phase, adam, register
from jax_anomaly.detectors.neighbors import BLOCK_ROWS, nearest_distances
from jax_anomaly.models import SegmentationNet, square_image_shape

# Coarseness of the noise grid: cells across the image (one drawn per defect).
NOISE_CELLS = (2, 4, 8, 16)


@dataclasses.dataclass(frozen=True)
class DefectsConfig:
    """The synthetic defects and the segmentation network that finds them.

    Attributes:
      channels: the U-Net's channels per level, e.g. 32,64,64,64 (each level after the first
        halves the side).
      pack: pixels per side of each block that enters the network as channels (space to
        depth): 2 runs a 128x128 image at 64x64's cost, 1 at full resolution.
      defect_share: share of the training images that get a synthetic defect.
      line_share: share of the defects that are thin lines (cracks); the rest are blobs.
      cutpaste_share: share of the defects that are instead CutPaste patches (Li et al. 2021):
        a rectangle of the image (a tenth to a third of its side, aspect 1:3 to 3:1) pasted,
        unchanged, at another place of the same image. 0: none (the draws of the other kinds
        stay as they are).
      resize_to: side in pixels that photographs (magnetic_tile, folder:PATH) are resized to
        for this detector (the data settings' image_size, where given, wins).
      smooth: side of the box filter over the (mean) probability map before its maximum is taken
        (the image score); 1: no smoothing.
      mirrors: the map is the mean of the maps of the image and of its three mirror images
        (rows, columns, both; mapped back), as the training draws mirrored images too.
      auto_epochs: training passes over the normal images when the training settings leave the
        length to the detector (``epochs`` unset) ...
      auto_batch: ... and the batch size of those passes (many small steps: a few hundred
        photographs make few batches of the library's default 128).
      bank_levels: the U-Net's deepest levels whose outputs describe a patch for the bank
        (joined on the finest of their grids); 0: no bank, the score is the map's maximum.
      bank_pool: side of the box average over neighbouring patches' features (odd).
      bank_top: an image's score is the mean distance of its this many patches farthest from
        the bank (1: the farthest alone).
      bank_scale: the first this many images of the bank's pass (a random sample of the
        training images; at most half of those written) also set each grid position's typical
        distance: their patches' mean distance to the bank without them. A patch's distance is
        divided by its position's (edges and textured regions lie farther from the bank);
        0: no scaling.
      bank_map: the map is the segmenter's (mean, smoothed) probability times each pixel's
        distance to the bank to this power (the patch grid's distances, not over the scale,
        bilinearly upsampled to the image): a pixel must look like a defect and unlike every
        normal patch. 0 (or False): the probability alone; True: the power 1.
      bank_size: patches the bank holds (a multiple of 1024 or at most 1024); where the
        training images have more, those of the images passed last (a random subset: the pass
        is shuffled) replace the first.
      score_batch: images per vmapped scoring chunk (each with its mirror images): 8 scores
        the same bits as 64 in about half the time and a quarter of the memory on a CPU
        (``experiments/bench_defects_score.py``).
    """

    channels: tuple[int, ...] = (32, 64, 64, 64)
    pack: int = 2
    defect_share: float = 0.5
    line_share: float = 0.5
    cutpaste_share: float = 0.0
    resize_to: int = 128
    smooth: int = 3
    mirrors: bool = True
    auto_epochs: int = 30
    auto_batch: int = 16
    bank_levels: int = 2
    bank_pool: int = 3
    bank_top: int = 10
    bank_scale: int = 40
    bank_map: float = 0.5
    bank_size: int = 262_144
    score_batch: int = 8

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))  # JSON / CLI lists
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError(f"channels must be >= 1, got {self.channels}")
        if self.pack < 1:
            raise ValueError(f"pack must be >= 1, got {self.pack}")
        for name in ("defect_share", "line_share", "cutpaste_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.resize_to < 8:
            raise ValueError(f"resize_to must be >= 8 pixels, got {self.resize_to}")
        if self.smooth < 1 or self.smooth % 2 == 0:
            raise ValueError(f"smooth must be an odd number of pixels >= 1, got {self.smooth}")
        if not 0 <= self.bank_levels <= len(self.channels):
            raise ValueError(
                f"bank_levels must be in [0, {len(self.channels)}] (the U-Net's levels), "
                f"got {self.bank_levels}"
            )
        if self.bank_pool < 1 or self.bank_pool % 2 == 0:
            raise ValueError(f"bank_pool must be an odd number of patches >= 1, got {self.bank_pool}")
        if self.bank_top < 1:
            raise ValueError(f"bank_top must be >= 1 patch, got {self.bank_top}")
        if self.bank_scale < 0:
            raise ValueError(f"bank_scale must be >= 0 images, got {self.bank_scale}")
        if self.bank_size < 1 or (self.bank_size > 1024 and self.bank_size % 1024):
            raise ValueError(
                f"bank_size must be >= 1 and a multiple of 1024 above 1024, got {self.bank_size}"
            )
        object.__setattr__(self, "bank_map", float(self.bank_map))  # True / False: 1 / 0
        if self.bank_map < 0:
            raise ValueError(f"bank_map must be a power >= 0, got {self.bank_map}")
        if self.auto_epochs < 1 or self.auto_batch < 1:
            raise ValueError(
                f"auto_epochs and auto_batch must be >= 1, got {self.auto_epochs}, {self.auto_batch}"
            )


def image_shape(n_features: int, cfg: DefectsConfig) -> tuple[int, int, int]:
    """``(side, side, channels)`` of the square images in rows of ``n_features``: grey (rows
    of side**2 pixels) or RGB (side**2 * 3 values, each pixel's three together; 3 x a square
    is never a square, so the count tells which).

    Raises:
      ValueError: neither, or the side does not divide by ``pack * 2**(levels - 1)``.
    """
    step = cfg.pack * 2 ** (len(cfg.channels) - 1)
    shape = square_image_shape(n_features, step)
    if shape is not None:
        return shape
    raise ValueError(
        f"defects needs square grey or RGB images whose side divides by {step} (pack "
        f"{cfg.pack} x 2 per level after the first); got {n_features} features"
    )


def smooth_noise(key: jax.Array, side: int) -> jax.Array:
    """(side, side) noise: a standard Gaussian grid of ``c + 1`` x ``c + 1`` points, ``c``
    drawn from ``NOISE_CELLS``, upsampled bicubically (every coarseness is made, one kept:
    shapes stay static under jit)."""
    keys = jax.random.split(key, len(NOISE_CELLS) + 1)
    grids = [
        jax.image.resize(jax.random.normal(k, (c + 1, c + 1)), (side, side), "cubic")
        for k, c in zip(keys[:-1], NOISE_CELLS, strict=True)
    ]
    return jnp.stack(grids)[jax.random.randint(keys[-1], (), 0, len(NOISE_CELLS))]


def synthetic_defects(key: jax.Array, image: jax.Array, other: jax.Array, cfg: DefectsConfig):
    """``(image with a synthetic defect or unchanged, its defect mask (H, W))`` for one image
    (H, W, C) in [0, 1]; ``other`` (H, W, C) lends its texture to some defects."""
    k = jax.random.split(key, 9)
    side = image.shape[0]
    shape_noise = smooth_noise(k[0], side)
    level = jax.random.uniform(k[1], (), minval=0.6, maxval=1.4)
    blob = shape_noise > level
    width = jax.random.uniform(k[2], (), minval=0.04, maxval=0.15)
    line = (jnp.abs(shape_noise) < width) & (smooth_noise(k[3], side) > 0.3)  # a broken band
    mask = jnp.where(jax.random.uniform(k[4]) < cfg.line_share, line, blob)
    gate = jax.random.uniform(k[5]) < cfg.defect_share
    mask = mask & gate
    source = jnp.where(jax.random.uniform(k[6]) < 0.5, image, other[::-1])
    fill = jnp.clip(source * jax.random.uniform(k[7], (), minval=0.2, maxval=1.6), 0.0, 1.0)
    keep = jax.random.uniform(k[8], (), minval=0.0, maxval=0.7)
    fill = keep * image + (1.0 - keep) * fill
    if cfg.cutpaste_share > 0:  # its own draws: the other kinds' keys are unchanged
        use, rect, patch = cut_paste(jax.random.fold_in(key, 1), image, cfg.cutpaste_share)
        mask, fill = jnp.where(use, rect & gate, mask), jnp.where(use, patch, fill)
    mask = mask.astype(image.dtype)
    return image * (1.0 - mask[..., None]) + fill * mask[..., None], mask


def cut_paste(key: jax.Array, image: jax.Array, share: float):
    """``(use, rect (H, W) bool, patch (H, W, C))``: whether this defect is a CutPaste patch
    (with probability ``share``), the rectangle it covers, and the image shifted so that each
    pixel of the rectangle shows another place of the image."""
    k = jax.random.split(key, 6)
    side = image.shape[0]
    height = jnp.round(side * jax.random.uniform(k[0], (), minval=0.1, maxval=1 / 3))
    aspect = jnp.exp(jax.random.uniform(k[1], (), minval=-jnp.log(3.0), maxval=jnp.log(3.0)))
    height = jnp.clip(height, 2, side // 2)
    width = jnp.clip(jnp.round(height * aspect), 2, side // 2)
    top = jnp.floor(jax.random.uniform(k[2]) * (side - height + 1))
    left = jnp.floor(jax.random.uniform(k[3]) * (side - width + 1))
    rows, cols = jnp.arange(side)[:, None], jnp.arange(side)[None, :]
    rect = (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)
    shift = jax.random.randint(k[4], (2,), 1, side)  # never the place itself
    patch = jnp.roll(image, (shift[0], shift[1]), axis=(0, 1))
    return jax.random.uniform(k[5]) < share, rect, patch


def build_model(cfg: DefectsConfig, n_features: int) -> SegmentationNet:
    return SegmentationNet(image_shape(n_features, cfg), cfg.channels, cfg.pack)


def init_state(cfg: DefectsConfig, train: TrainConfig, n_features: int, key):
    model = build_model(cfg, n_features)
    params = model.init(key, jnp.zeros((1, n_features), jnp.float32))["params"]
    return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=adam(train))


def balanced_loss(logits: jax.Array, masks: jax.Array, mask: jax.Array) -> jax.Array:
    """Per-pixel sigmoid cross-entropy, the defect pixels and the normal pixels of the batch
    each averaged and weighted one half (a defect covers a few % of an image); ``mask`` (B,) is
    0 on padding rows."""
    loss = optax.sigmoid_binary_cross_entropy(logits, masks) * mask[:, None]
    defect = masks * mask[:, None]
    normal = (1.0 - masks) * mask[:, None]
    return 0.5 * (
        jnp.sum(loss * defect) / jnp.maximum(jnp.sum(defect), 1.0)
        + jnp.sum(loss * normal) / jnp.maximum(jnp.sum(normal), 1.0)
    )


def defect_batch(cfg: DefectsConfig, batch: jax.Array, key: jax.Array):
    """Rows (B, D) -> (rows with synthetic defects, their masks (B, H*W)): each image mirrored
    at random (both axes), then given a defect or not; the next image of the batch lends
    texture."""
    b, d = batch.shape
    side, _, channels = image_shape(d, cfg)
    k_flip, k_defect = jax.random.split(key)
    images = batch.reshape((b, side, side, channels))
    flips = jax.random.bernoulli(k_flip, 0.5, (2, b, 1, 1, 1))
    images = jnp.where(flips[0], images[:, ::-1], images)
    images = jnp.where(flips[1], images[:, :, ::-1], images)
    defective, masks = jax.vmap(synthetic_defects, in_axes=(0, 0, 0, None))(
        jax.random.split(k_defect, b), images, jnp.roll(images, 1, axis=0), cfg
    )
    return defective.reshape((b, d)), masks.reshape((b, side * side))


def make_step(cfg: DefectsConfig, train: TrainConfig, n_features: int):
    def step(state, batch, mask, key):
        images, masks = defect_batch(cfg, batch, key)

        def loss_fn(params):
            return balanced_loss(state.apply_fn({"params": params}, images), masks, mask)

        value, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), {"loss": value}

    return step


def make_eval(cfg: DefectsConfig, n_features: int):
    """The validation loss: the same synthetic defects, drawn from a fixed key (comparable
    from epoch to epoch)."""

    def eval_fn(state, x):
        images, masks = defect_batch(cfg, x, jax.random.key(0))
        logits = state.apply_fn({"params": state.params}, images)
        return {"loss": balanced_loss(logits, masks, jnp.ones(x.shape[0]))}

    return eval_fn


def train_length(cfg: DefectsConfig, train: TrainConfig) -> TrainConfig:
    """``cfg.auto_epochs`` of ``cfg.auto_batch`` images where the training settings leave the
    length open (``epochs`` None): the library's rule (>= 2,000 steps of 128) would mean hours
    of a 2-core CPU for 761 photographs at 128x128."""
    return train if train.epochs else replace(train, epochs=cfg.auto_epochs, batch_size=cfg.auto_batch)


def make_sample_scorer(cfg: DefectsConfig, n_features: int):
    """``one(params, x) -> {'score', 'map', 'segmenter', 'patches'}``: the defect probability
    of every pixel (with ``cfg.mirrors`` the mean over the four mirror images), box filtered
    over ``cfg.smooth`` pixels, and its maximum (``segmenter``); each patch's distance to the
    bank over its position's typical distance (``patches``, the patch grid flattened) and the
    mean of the ``cfg.bank_top`` largest (the score; without a bank, the score is
    ``segmenter``). The map is the probability, with ``cfg.bank_map`` times each pixel's
    bank distance to that power (the grid's distances, not over the scale, bilinearly
    upsampled)."""
    model = build_model(cfg, n_features)
    side, _, channels = image_shape(n_features, cfg)

    def one(params, x):
        net = params["net"]
        image = x.reshape((side, side, channels))
        views = [image, image[::-1], image[:, ::-1], image[::-1, ::-1]] if cfg.mirrors else [image]
        # One pass gives the map and the bank's features (those of the first view, the image).
        logits, levels = model.apply(
            {"params": net}, jnp.stack(views).reshape((len(views), -1)), return_features=True
        )
        probs = jax.nn.sigmoid(logits).reshape((len(views), side, side))
        back = [probs[0], probs[1, ::-1], probs[2, :, ::-1], probs[3, ::-1, ::-1]][: len(views)]
        prob = jnp.mean(jnp.stack(back), axis=0).reshape((1, side, side, 1))
        amap = nn.avg_pool(prob, (cfg.smooth, cfg.smooth), padding="SAME", count_include_pad=False)
        amap = amap.reshape(-1)
        out = {"segmenter": jnp.max(amap), "map": amap}
        if not cfg.bank_levels:
            return {"score": out["segmenter"], **out}
        if "scale" not in params:
            raise ValueError(
                "this defects model's bank has no per-position scale (it was fitted before "
                "bank_scale existed): fit it again"
            )
        distances = bank_distances(params, joined_levels(cfg, [lv[:1] for lv in levels])[0])
        patches = distances / params["scale"]
        farthest = jax.lax.top_k(patches, min(cfg.bank_top, patches.shape[0]))[0]
        if cfg.bank_map:
            out["map"] = amap * grid_to_pixels(distances, side) ** cfg.bank_map
        return {"score": jnp.mean(farthest), "patches": patches, **out}

    return one


def grid_to_pixels(values: jax.Array, side: int) -> jax.Array:
    """A square patch grid's values (flattened, ``(g * g,)``) bilinearly upsampled to a
    ``side`` x ``side`` image (flattened), each value at its patch's centre."""
    grid = math.isqrt(values.shape[0])
    return jax.image.resize(values.reshape((grid, grid)), (side, side), "bilinear").reshape(-1)


# ---- the patch bank: features of the normal images' patches, nearest-neighbour scores ----


def patch_features(cfg: DefectsConfig, n_features: int):
    """``features(params, rows (B, D)) -> (B, P, C)``: each image's patches (P = the grid of the
    finest of the ``cfg.bank_levels`` deepest levels), the levels' ReLU outputs joined (coarser
    ones bilinearly upsampled) and box-averaged over ``cfg.bank_pool`` patches."""
    model = build_model(cfg, n_features)

    def features(params, rows):
        return joined_levels(cfg, model.apply({"params": params}, rows, return_features=True)[1])

    return features


def joined_levels(cfg: DefectsConfig, levels: list[jax.Array]) -> jax.Array:
    """The U-Net's level outputs (each ``(B, h_i, w_i, C_i)``, finest first) -> ``(B, P, C)``:
    the ``cfg.bank_levels`` deepest joined on the finest of their grids and box-averaged
    (``patch_features``)."""
    levels = levels[len(levels) - cfg.bank_levels :]
    b, h, w, _ = levels[0].shape
    joined = jnp.concatenate(
        [levels[0]] + [jax.image.resize(m, (b, h, w, m.shape[-1]), "bilinear") for m in levels[1:]], -1
    )
    pool = (cfg.bank_pool, cfg.bank_pool)
    joined = nn.avg_pool(joined, pool, padding="SAME", count_include_pad=False)
    return joined.reshape((b, h * w, joined.shape[-1]))


def bank_channels(cfg: DefectsConfig) -> int:
    return sum(cfg.channels[len(cfg.channels) - cfg.bank_levels :])


def bank_phase() -> Phase:
    """The gradient-free second phase: one shuffled pass over the training images writing
    their patches' features into a bank of ``cfg.bank_size`` rows (a ring: past the end, the
    next patches replace the first), the first ``cfg.bank_scale`` images' also into ``held``;
    the scorer gets ``{'net', 'bank', 'sq', 'scale'}`` (``sq``: each bank row's squared norm,
    +inf on rows never written; ``scale``: ``position_scale``). Its state is not kept beside
    the parameters (``keep_state=False``): the bank is stored once."""

    def init_state(cfg, train: TrainConfig, n_features: int, key, *, previous):
        del train, key
        if cfg.bank_levels:  # (N, P, C): the first images' patch features
            one = jax.eval_shape(patch_features(cfg, n_features), previous, jnp.zeros((1, n_features)))
            held = (cfg.bank_scale, *one.shape[1:])
        else:
            held = (0, 1, 0)
        return {
            "params": previous,
            "bank": jnp.zeros((cfg.bank_size, bank_channels(cfg)), jnp.float32),
            "held": jnp.zeros(held, jnp.float32),
            "count": jnp.zeros((), jnp.int32),
        }

    def make_step(cfg, train: TrainConfig, n_features: int):
        features = patch_features(cfg, n_features)

        def step(state, batch, mask, key):
            del key
            if not cfg.bank_levels:
                return state, {"loss": jnp.zeros(())}
            f = features(state["params"], batch)  # (B, P, C)
            b, p, c = f.shape
            real = mask > 0
            image = state["count"] // p + jnp.cumsum(real) - 1  # each image's place in the pass
            slots = (image[:, None] * p + jnp.arange(p)) % cfg.bank_size
            slots = jnp.where(real[:, None], slots, cfg.bank_size)  # padding rows: dropped
            bank = state["bank"].at[slots.reshape(-1)].set(f.reshape((b * p, c)), mode="drop")
            held_at = jnp.where(real, image, cfg.bank_scale)  # past the first bank_scale: dropped
            held = state["held"].at[held_at].set(f, mode="drop")
            count = state["count"] + jnp.sum(real) * p
            new = {"params": state["params"], "bank": bank, "held": held, "count": count}
            return new, {"loss": jnp.zeros(())}

        return step

    def params_of(state) -> dict:
        bank = state["bank"]
        written = jnp.arange(bank.shape[0]) < state["count"]
        sq = jnp.where(written, jnp.sum(jnp.square(bank), axis=-1), jnp.inf)
        params = {"net": state["params"], "bank": bank, "sq": sq}
        return {**params, "scale": position_scale(params, state["held"], state["count"])}

    def train_config(cfg, train: TrainConfig) -> TrainConfig:
        return replace(train_length(cfg, train), epochs=1, patience=None)

    return Phase(
        "bank", init_state, make_step, params_of=params_of, train_config=train_config, keep_state=False
    )


def position_scale(params: dict, held: jax.Array, count: jax.Array) -> jax.Array:
    """``(P,)``: each grid position's typical distance to the bank, the mean over the held
    images (``held`` (N, P, C), the first N images of the bank's pass; at most half of the
    ``count // P`` images written and of those the bank holds) of their patch's distance to the
    bank without their rows (the bank's first rows). Ones without held images; floored at
    1/1000 of the mean."""
    n, p, c = held.shape
    if not n:
        return jnp.ones((p,), jnp.float32)
    rows = params["bank"].shape[0]
    used = jnp.minimum(jnp.minimum(n, count // p // 2), rows // p // 2)

    def mean_distance(_):
        others = {**params, "sq": jnp.where(jnp.arange(rows) < used * p, jnp.inf, params["sq"])}
        d = bank_distances(others, held.reshape((n * p, c))).reshape((n, p))
        return jnp.sum(jnp.where((jnp.arange(n) < used)[:, None], d, 0.0), axis=0) / jnp.maximum(used, 1)

    scale = jax.lax.cond(used > 0, mean_distance, lambda _: jnp.ones((p,), jnp.float32), None)
    level = jnp.mean(scale)
    return jnp.where(level > 0, jnp.maximum(scale, 1e-3 * level), 1.0)


def bank_distances(params: dict, queries: jax.Array) -> jax.Array:
    """``(P, C) -> (P,)``: each query patch's distance to its nearest bank patch."""
    rows = params["bank"]
    block = math.gcd(rows.shape[0], BLOCK_ROWS)
    blocks = {
        "rows": rows.reshape((-1, block, rows.shape[1])),
        "sq": params["sq"].reshape((-1, block)),
    }
    return jax.vmap(lambda q: nearest_distances(blocks, q, 1)[0])(queries)


PRESETS = {
    "default": DefectsConfig(),
    "tiny": DefectsConfig(
        channels=(4, 8), pack=1, resize_to=16, auto_epochs=2, bank_size=131_072, score_batch=16
    ),
}

DETECTOR = register(
    Detector(
        name="defects",
        description="segmentation network trained on synthetic defects (DRAEM-style), anomaly maps",
        config_cls=DefectsConfig,
        presets=PRESETS,
        phases=(Phase("train", init_state, make_step, make_eval, train_config=train_length), bank_phase()),
        make_sample_scorer=make_sample_scorer,
        estimator="DefectSegmenter",
    )
)

__all__ = [
    "DETECTOR",
    "DefectsConfig",
    "balanced_loss",
    "bank_distances",
    "grid_to_pixels",
    "patch_features",
    "position_scale",
    "smooth_noise",
    "synthetic_defects",
]
