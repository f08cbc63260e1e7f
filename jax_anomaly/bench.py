"""Throughput measurement: FLOP counts from layer sizes, an in-run matmul peak, timed runs.

Figures are meant to be read as ratios measured in the same process (achieved GFLOP/s
against the ``jnp.dot`` peak of that run), since shared CPUs drift between runs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def dense_forward_flops(layers: Sequence[int]) -> int:
    """FLOPs of one sample's forward pass through dense layers ``layers[0] -> ... -> layers[-1]``
    (2 per multiply-add; biases and activations are negligible and left out)."""
    return int(sum(2 * a * b for a, b in zip(layers[:-1], layers[1:], strict=True)))


def dense_train_flops(layers: Sequence[int]) -> int:
    """Forward + backward FLOPs of one training sample: the backward pass costs two matmuls
    per layer (weight and input gradients) except the first layer, whose input needs no gradient."""
    fwd = dense_forward_flops(layers)
    return int(fwd + 2 * fwd - 2 * layers[0] * layers[1])


def step_matmuls(fn: Callable, *args) -> list[tuple]:
    """The matrix products ``fn(*args)`` performs: ``(lhs aval, rhs aval, params)`` of every
    ``dot_general`` in its jaxpr, nested jaxprs (jit, custom VJPs, ...) included.

    Meant for straight-line steps: a product inside a loop primitive is listed once.
    """
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive is jax.lax.dot_general_p:
                found.append((eqn.invars[0].aval, eqn.invars[1].aval, dict(eqn.params)))
            for value in eqn.params.values():
                for sub in value if isinstance(value, tuple | list) else (value,):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        walk(inner)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


def matmul_flops(matmuls: Sequence[tuple]) -> int:
    """FLOPs of ``step_matmuls``' products: 2 x output size x contracted size each."""
    total = 0
    for lhs, rhs, params in matmuls:
        (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = params["dimension_numbers"]
        lhs_free = [d for i, d in enumerate(lhs.shape) if i not in (*lhs_contract, *lhs_batch)]
        rhs_free = [d for i, d in enumerate(rhs.shape) if i not in (*rhs_contract, *rhs_batch)]
        sizes = [lhs.shape[i] for i in (*lhs_batch, *lhs_contract)] + lhs_free + rhs_free
        total += 2 * int(np.prod(sizes))
    return total


def matmul_only_epoch(matmuls: Sequence[tuple], steps: int) -> tuple[Callable, list]:
    """``(epoch, operands)``: ``epoch(operands)`` runs ``steps`` iterations of a ``lax.scan``
    doing only ``matmuls`` (one training step's products, as ``step_matmuls`` lists them) on
    constant operands, jitted."""
    operands = [(jnp.full(a.shape, 0.01, a.dtype), jnp.full(b.shape, 0.01, b.dtype)) for a, b, _ in matmuls]

    def epoch(operands):
        def body(carry, _):
            # The barrier ties the operands to the loop carry, so the products are not
            # hoisted out of the loop; the second one keeps each product whole.
            ops, carry = jax.lax.optimization_barrier((operands, carry))
            outs = [jax.lax.dot_general_p.bind(a, b, **p) for (a, b), (_, _, p) in zip(ops, matmuls, strict=True)]
            outs = jax.lax.optimization_barrier(outs)
            return carry + sum(o.reshape(-1)[0].astype(jnp.float32) for o in outs), None

        return jax.lax.scan(body, jnp.float32(0), None, length=steps)[0]

    return jax.jit(epoch), operands


def matmul_only_seconds(matmuls: Sequence[tuple], steps: int, repeats: int = 5) -> float:
    """Wall seconds of ``matmul_only_epoch``: what an epoch would take if the step were
    nothing but its matrix products, run by the same compiler and runtime. Best of
    ``repeats`` compiled calls."""
    epoch, operands = matmul_only_epoch(matmuls, steps)
    compiled = epoch.lower(operands).compile()
    block(compiled(operands))
    return min(time_calls(compiled, operands, repeats=repeats))


def step_breakdown(step: Callable, state, batch: np.ndarray, n: int, epoch_seconds: float, peak_gflops: float) -> dict:
    """Where a training step's time goes: its matrix products (counted from its jaxpr) timed
    alone in a scan of one epoch's steps, against the measured epoch time.

    Returns FLOPs per sample (from the products), the products-only samples/s and fraction
    of the peak (the ceiling for this compiler, runtime and these shapes), and the step's
    time over its products' time (the rest is element-wise work, the optimiser update,
    the batch gather and per-operation dispatch). ``epoch_seconds`` should be the best
    measured epoch, as the products' time is the best of several runs.
    """
    b = len(batch)
    mask = jnp.ones(b, jnp.float32)
    matmuls = step_matmuls(step, state, jnp.asarray(batch), mask, jax.random.key(0))
    flops = matmul_flops(matmuls)
    steps = -(-n // b)
    seconds = matmul_only_seconds(matmuls, steps)
    return {
        "step_matmuls": len(matmuls),
        "step_flops_per_sample": flops / b,
        "matmul_only_epoch_seconds": seconds,
        "matmul_only_samples_per_second": n / seconds,
        "matmul_only_fraction_of_peak": flops * steps / seconds / 1e9 / peak_gflops,
        "best_epoch_over_matmul_only": epoch_seconds / seconds,
    }


def block(tree):
    return jax.tree.map(lambda a: a.block_until_ready() if hasattr(a, "block_until_ready") else a, tree)


def time_calls(fn: Callable, *args, repeats: int = 3) -> list[float]:
    """Wall seconds of ``repeats`` calls of an already compiled ``fn`` (results blocked on)."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(fn(*args))
        out.append(time.perf_counter() - t0)
    return out


def matmul_peak_gflops(n: int | None = None, repeats: int = 5, dtype=jnp.float32) -> dict:
    """Dense ``n x n`` matmul GFLOP/s with ``jnp.dot`` in this process (best of ``repeats``),
    under the matmul precision in force. ``n`` defaults to 2048 on CPU and 8192 on
    accelerators (a GPU needs a large product to reach its peak).

    Where a CPU shows several devices (one per core, ``sharding.use_cpu_cores_as_devices``),
    one product per device run at once is timed too, and ``gflops`` is the faster of the
    two ways, so work split over those devices is not measured against a lower peak.
    """
    n = n or (2048 if jax.default_backend() == "cpu" else 8192)
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(key_a, (n, n), dtype)
    b = jax.random.normal(key_b, (n, n), dtype)
    f = jax.jit(jnp.dot)
    block(f(a, b))
    best = min(time_calls(f, a, b, repeats=repeats))
    result = {
        "n": n,
        "dtype": jnp.dtype(dtype).name,
        "precision": str(jax.config.jax_default_matmul_precision),
        "seconds": best,
        "gflops": 2 * n**3 / best / 1e9,
    }
    devices = jax.devices()
    if len(devices) > 1 and devices[0].platform == "cpu":
        from jax.sharding import PartitionSpec as P

        from jax_anomaly.sharding import make_mesh, rows

        mesh = make_mesh()
        stacked = jax.device_put(jnp.broadcast_to(a, (len(devices), n, n)), rows(mesh))
        g = jax.jit(jax.shard_map(lambda s: s @ b, mesh=mesh, in_specs=P("data"), out_specs=P("data")))
        block(g(stacked))
        per_device = min(time_calls(g, stacked, repeats=repeats))
        result["gflops_single_program"] = result["gflops"]
        result["gflops_one_per_device"] = len(devices) * 2 * n**3 / per_device / 1e9
        result["gflops"] = max(result["gflops"], result["gflops_one_per_device"])
    return result


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB (host memory; on CPU this is where arrays live)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_memory_mib() -> float | None:
    """Peak device memory in use (MiB) where the backend reports it (GPU), else None."""
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**20


def summarize(values: Sequence[float]) -> dict:
    v = np.asarray(values, np.float64)
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}


def _report(result: dict, out: str | None) -> dict:
    import json
    import sys
    from pathlib import Path

    for k, v in result.items():
        if isinstance(v, float):
            print(f"{k:34s} {v:,.4g}")
        elif not isinstance(v, list | dict):
            print(f"{k:34s} {v}")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}", file=sys.stderr)
    return result


def bench_ae(*, epochs: int = 20, batch_size: int = 128, unroll: int = 1, data_dir=None, out=None) -> dict:
    """Dense AE 784-128-64-12-3 on the 6000 Fashion-MNIST class-0 training images: training
    samples/s (epochs 2..N; epoch 1 and compile reported apart), GFLOP/s against the in-run
    ``jnp.dot`` peak, and scoring samples/s."""
    from jax_anomaly.config import TrainConfig
    from jax_anomaly.data import load_dataset
    from jax_anomaly.detectors import autoencoder as ae

    ds = load_dataset("fashion_mnist", data_dir=data_dir)
    x = (ds.x_train[ds.y_train == 0] / np.float32(255)).astype(np.float32)
    cfg = ae.PRESETS["mnist_tutorial"]
    layers = [x.shape[1], *cfg.hidden, cfg.latent, *reversed(cfg.hidden), x.shape[1]]
    peak = matmul_peak_gflops()
    train = TrainConfig(epochs=epochs, batch_size=batch_size, unroll=unroll)
    fitted = ae.fit(cfg, train, x, None, key=jax.random.key(0), progress=False)
    r = fitted.result
    epoch_s = [h["seconds"] for h in r.history]
    steady = epoch_s[1:] or epoch_s
    samples_per_s = len(x) / float(np.median(steady))
    flops = dense_train_flops(layers)
    ae.score(fitted, x)  # compiles the scorer for this shape
    score_s = min(time_calls(lambda: ae.score(fitted, x), repeats=3))
    peak_after = matmul_peak_gflops()
    best_peak = max(peak["gflops"], peak_after["gflops"])
    breakdown = step_breakdown(
        ae.make_train_step(cfg), fitted.state, x[:batch_size], len(x), min(steady), best_peak
    )
    return _report(
        {
            "benchmark": "ae",
            "device": str(jax.devices()[0]),
            "n_samples": len(x),
            "layers": layers,
            "batch_size": batch_size,
            "epochs": epochs,
            "unroll": unroll,
            "compile_seconds": r.compile_seconds,
            "first_epoch_seconds": epoch_s[0],
            "epoch_seconds": summarize(steady),
            "train_samples_per_second": samples_per_s,
            "train_flops_per_sample": flops,
            "train_gflops": samples_per_s * flops / 1e9,
            "matmul_peak_gflops_before": peak["gflops"],
            "matmul_peak_gflops_after": peak_after["gflops"],
            "fraction_of_peak": samples_per_s * flops / 1e9 / best_peak,
            **breakdown,
            "score_samples_per_second": len(x) / score_s,
            "final_loss": r.history[-1]["loss"],
            "peak_rss_mib": peak_rss_mib(),
        },
        out,
    )


def anogan_search_flops(cfg, n_features: int) -> int:
    """FLOPs of one sample-iteration of the tutorial-loss search: forward through G and D,
    then the backward pass to z (input gradients only, which cost as much as the forward)."""
    g = dense_forward_flops([cfg.latent, *cfg.g_hidden, n_features])
    d = dense_forward_flops([n_features, *cfg.d_hidden, 1])
    return 2 * (g + d)


def _time_search(cfg, fitted, x, key, repeats: int, adjacent_peaks: bool = False) -> dict:
    """Compile time, then the best of ``repeats`` timed calls of the whole-set search, its
    samples sharded over all devices as ``anogan.score`` does (inputs placed beforehand).

    With ``adjacent_peaks``, a ``jnp.dot`` peak is also measured right before and after each
    timed call (``peaks``: the larger of the two per call), so a utilisation ratio can be
    taken against the machine's speed at that moment rather than minutes away: this shared
    machine drifts by 20-40 % within a run.
    """
    from jax_anomaly.detectors import anogan
    from jax_anomaly.sharding import make_mesh, place_samples

    n, mesh = len(x), make_mesh()
    search = anogan.search_for(cfg, fitted.n_features, n, mesh)
    params, (x, z0) = place_samples(mesh, fitted.params, x, anogan.initial_latents(cfg, x, key))
    t0 = time.perf_counter()
    compiled = search.lower(params, x, z0).compile()
    compile_s = time.perf_counter() - t0
    out = block(compiled(params, x, z0))  # warm-up
    times, peaks = [], []
    for _ in range(repeats):
        before = matmul_peak_gflops(repeats=3)["gflops"] if adjacent_peaks else np.nan
        times += time_calls(compiled, params, x, z0, repeats=1)
        after = matmul_peak_gflops(repeats=3)["gflops"] if adjacent_peaks else np.nan
        peaks.append(max(before, after))
    return {
        "compile_seconds": compile_s,
        "seconds": min(times),
        "times": times,
        "peaks": peaks,
        "scores": np.asarray(out["score"])[:n],
        "devices": mesh.devices.size,
    }


def bench_anogan(
    *,
    run_dir: str | None = None,
    gan_epochs: int = 50,
    sizes: Sequence[int] = (1000, 10000),
    steps: int = 500,
    curve: bool = True,
    precisions: Sequence[str] = (),
    data_dir=None,
    out=None,
) -> dict:
    """AnoGAN scoring throughput on MNIST (digit 0 normal) at ``sizes`` x ``steps``, GAN
    training samples/s, and the AUROC / time trade-off of shorter searches.

    ``precisions`` (names of ``config.MATMUL_PRECISIONS``: ``float32``, ``tf32``, ``bf16``)
    also times the search on the whole test set under each matmul precision and states its
    effect on the scores against the first one (AUROC, relative score change, rank correlation).

    A GAN is trained for ``gan_epochs`` epochs here (timed); the search uses it, or the GAN
    of ``run_dir`` (a ``mnist_anogan`` run folder) when given.
    """
    from pathlib import Path

    from sklearn.metrics import roc_auc_score

    from jax_anomaly.config import DataConfig, TrainConfig
    from jax_anomaly.detectors import anogan
    from jax_anomaly.runner import RunConfig, prepare_data

    data = prepare_data(RunConfig(data=DataConfig("mnist", (0,), data_dir=data_dir)))
    x_train, x_test = anogan.DETECTOR.to_input(data.x_train), anogan.DETECTOR.to_input(data.x_test)
    cfg = dataclasses.replace(anogan.PRESETS["mnist_tutorial"], search_steps=steps)
    result = {
        "benchmark": "anogan",
        "device": str(jax.devices()[0]),
        "search_devices": jax.device_count(),
        "search_steps": steps,
    }
    peak = matmul_peak_gflops()
    loaded = None
    if run_dir:
        from jax_anomaly.estimators import load

        loaded = load(Path(run_dir) / "model").fitted_
        cfg = dataclasses.replace(loaded.config, search_steps=steps)
        result["gan"] = f"loaded from {run_dir}; trained {gan_epochs} epochs here for timing only"
    train = TrainConfig(epochs=gan_epochs, batch_size=128)
    trained = anogan.fit(cfg, train, x_train, key=jax.random.key(0), progress=False)
    epoch_s = [h["seconds"] for h in trained.result.history]
    steady = epoch_s[1:] or epoch_s
    result.update(
        gan_epochs=gan_epochs,
        gan_compile_seconds=trained.result.compile_seconds,
        gan_train_samples_per_second=len(x_train) / float(np.median(steady)),
    )
    fitted = dataclasses.replace(loaded, config=cfg) if loaded else trained
    flops = anogan_search_flops(cfg, x_test.shape[1])
    result["flops_per_sample_iteration"] = flops
    key = jax.random.key(1)
    measured_peaks = []
    for n in sizes:
        x = np.resize(x_test, (n, x_test.shape[1]))  # repeats the test set when n > 10,000
        t = _time_search(
            cfg, fitted, x, jax.random.fold_in(key, n), repeats=1 if n * steps > 2e6 else 3, adjacent_peaks=True
        )
        # utilisation of each timed call against the peak measured around it; the median
        ratios = [n * steps * flops / s / 1e9 / p for s, p in zip(t["times"], t["peaks"], strict=True)]
        result[f"n{n}_fraction_of_adjacent_peak"] = float(np.median(ratios))
        result[f"n{n}_adjacent_peak_gflops"] = float(np.median(t["peaks"]))
        measured_peaks += t["peaks"]
        gflops = n * steps * flops / t["seconds"] / 1e9
        result[f"n{n}_compile_seconds"] = t["compile_seconds"]
        result[f"n{n}_seconds"] = t["seconds"]
        result[f"n{n}_samples_per_second"] = n / t["seconds"]
        result[f"n{n}_seconds_per_10k"] = t["seconds"] * 10000 / n
        result[f"n{n}_gflops"] = gflops
        if n == len(x_test):
            result[f"n{n}_auroc"] = float(roc_auc_score(data.y_test, t["scores"]))
    peak_after = matmul_peak_gflops()
    best_peak = max(peak["gflops"], peak_after["gflops"], *measured_peaks)  # the fastest seen in this run
    result.update(
        matmul_peak_gflops_before=peak["gflops"],
        matmul_peak_gflops_after=peak_after["gflops"],
        matmul_peak_gflops_best=best_peak,
    )
    for n in sizes:
        result[f"n{n}_fraction_of_peak"] = result[f"n{n}_gflops"] / best_peak
    gan = step_breakdown(
        anogan.make_train_step(cfg), trained.state, x_train[: train.batch_size], len(x_train), min(steady), best_peak
    )
    result.update({f"gan_{k}": v for k, v in gan.items()})
    result["gan_train_gflops"] = result["gan_train_samples_per_second"] * gan["step_flops_per_sample"] / 1e9
    result["gan_train_fraction_of_peak"] = result["gan_train_gflops"] / best_peak
    result["peak_rss_mib"] = peak_rss_mib()
    result["device_peak_mib"] = device_memory_mib()
    if precisions:
        result["precision"] = anogan_precision(fitted, x_test, data.y_test, cfg, precisions)
    if curve:
        result["tradeoff"] = anogan_tradeoff(fitted, x_test[:2000], data.y_test[:2000], cfg)
    return _report(result, out)


def anogan_precision(fitted, x, y, cfg, precisions: Sequence[str]) -> list[dict]:
    """The whole-set search under each matmul precision: seconds, GFLOP/s against that
    precision's own ``jnp.dot`` peak, AUROC, and the scores' change against the first one."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from jax_anomaly.config import matmul_precision

    flops = anogan_search_flops(cfg, x.shape[1]) * len(x) * cfg.search_steps
    rows, reference = [], None
    for precision in precisions:
        with matmul_precision(precision):
            peak = matmul_peak_gflops()
            t = _time_search(cfg, fitted, x, jax.random.key(3), repeats=1)
        scores = t["scores"]
        reference = scores if reference is None else reference
        rel = np.abs(scores - reference) / np.maximum(np.abs(reference), 1e-12)
        row = {
            "precision": precision,
            "seconds": t["seconds"],
            "compile_seconds": t["compile_seconds"],
            "gflops": flops / t["seconds"] / 1e9,
            "matmul_peak_gflops": peak["gflops"],
            "fraction_of_peak": flops / t["seconds"] / 1e9 / peak["gflops"],
            "auroc": float(roc_auc_score(y, scores)),
            "max_rel_score_change": float(rel.max()),
            "median_rel_score_change": float(np.median(rel)),
            "spearman_vs_first": float(spearmanr(scores, reference).statistic),
        }
        print(
            f"  precision {precision:14s} {row['seconds']:7.2f} s  {row['gflops']:9.1f} GFLOP/s "
            f"({row['fraction_of_peak']:.2f} of its peak {peak['gflops']:.0f})  AUROC {row['auroc']:.4f}  "
            f"max rel. change {row['max_rel_score_change']:.2e}"
        )
        rows.append(row)
    return rows


def anogan_tradeoff(fitted, x, y, base_cfg, step_counts=(10, 25, 50, 100, 200, 500)) -> list[dict]:
    """AUROC and seconds of the search against its length, for the tutorial's constant step
    size and for a cosine schedule with a larger first step and best-of-16 initial latents."""
    from sklearn.metrics import roc_auc_score

    variants = {
        "constant lr 1e-2": {"search_schedule": "constant", "search_lr": 1e-2, "search_init": 1},
        "cosine lr 5e-2, best of 16 z0": {"search_schedule": "cosine", "search_lr": 5e-2, "search_init": 16},
    }
    rows = []
    for name, overrides in variants.items():
        for steps in step_counts:
            cfg = dataclasses.replace(base_cfg, search_steps=steps, **overrides)
            t = _time_search(cfg, fitted, x, jax.random.key(7), repeats=1)
            row = {
                "variant": name,
                "steps": steps,
                "seconds": t["seconds"],
                "seconds_per_10k": t["seconds"] * 10000 / len(x),
                "auroc": float(roc_auc_score(y, t["scores"])),
            }
            print(
                f"  tradeoff {name:32s} steps {steps:4d}  AUROC {row['auroc']:.4f}  "
                f"{row['seconds_per_10k']:8.3g} s/10k"
            )
            rows.append(row)
    return rows


def bench_scaling(
    *,
    device_counts: Sequence[int] = (1, 2, 4, 8),
    n_train: int = 6000,
    epochs: int = 4,
    batch_size: int = 128,
    n_score: int = 2000,
    steps: int = 50,
    out=None,
) -> dict:
    """Data-parallel throughput on 1, 2, 4, 8 ... devices (those visible): dense AE training
    (784-128-64-12-3, global batch ``batch_size``) and the AnoGAN search (MNIST tutorial
    sizes, ``n_score`` samples x ``steps``). Inputs are uniform random 784-d rows: throughput
    does not depend on the values, and the benchmark then needs no data files.

    Virtual CPU devices (``--cpu-devices``) share the same cores: they show that the sharded
    path is correct and what it costs, not a speed-up.
    """
    from jax_anomaly.config import TrainConfig
    from jax_anomaly.detectors import Fitted, anogan
    from jax_anomaly.detectors import autoencoder as ae
    from jax_anomaly.sharding import make_mesh, map_samples

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(n_train, 784)).astype(np.float32)
    x_score = (2 * rng.uniform(size=(n_score, 784)) - 1).astype(np.float32)
    ae_cfg = ae.PRESETS["mnist_tutorial"]
    gan_cfg = dataclasses.replace(anogan.PRESETS["mnist_tutorial"], search_steps=steps)
    gan_state = anogan.init_state(gan_cfg, TrainConfig(), 784, jax.random.key(0))
    gan = Fitted(
        "anogan", gan_cfg, {"generator": gan_state.g.params, "discriminator": gan_state.d.params}, None, 784
    )
    z0 = anogan.initial_latents(gan_cfg, x_score, jax.random.key(1))
    counts = [c for c in device_counts if c <= jax.device_count()]
    result = {
        "benchmark": "scaling",
        "platform": jax.devices()[0].platform,
        "device_kind": jax.devices()[0].device_kind,
        "visible_devices": jax.device_count(),
        "n_train": n_train,
        "batch_size": batch_size,
        "n_score": n_score,
        "search_steps": steps,
        "rows": [],
    }
    reference = None
    for d in counts:
        train = TrainConfig(epochs=epochs, batch_size=batch_size, devices=d)
        fitted = ae.fit(ae_cfg, train, x, None, key=jax.random.key(0), progress=False)
        epoch_s = [h["seconds"] for h in fitted.result.history][1:]
        mesh = make_mesh(d)
        search = anogan.search_for(gan_cfg, 784, n_score, mesh)
        scores = map_samples(search, mesh, gan.params, x_score, z0)["score"]  # compiles
        t0 = time.perf_counter()
        scores = map_samples(search, mesh, gan.params, x_score, z0)["score"]
        search_s = time.perf_counter() - t0
        reference = scores if reference is None else reference
        row = {
            "devices": d,
            "per_device_batch": -(-batch_size // d),
            "train_compile_seconds": fitted.result.compile_seconds,
            "train_samples_per_second": n_train / float(np.median(epoch_s)),
            "search_samples_per_second": n_score / search_s,
            "search_seconds": search_s,
            "max_score_diff_vs_1": float(np.max(np.abs(scores - reference))),
            "final_loss": fitted.result.history[-1]["loss"],
        }
        print(
            f"  {d} device(s): train {row['train_samples_per_second']:10,.0f} samples/s   search "
            f"{row['search_samples_per_second']:9,.0f} samples/s   scores vs 1 device: "
            f"max diff {row['max_score_diff_vs_1']:.1e}"
        )
        result["rows"].append(row)
    base = result["rows"][0]
    for row in result["rows"]:
        row["train_speedup"] = row["train_samples_per_second"] / base["train_samples_per_second"]
        row["search_speedup"] = row["search_samples_per_second"] / base["search_samples_per_second"]
    return _report(result, out)


def bench_fanogan(
    *,
    epochs: int = 30,
    search_presets: Sequence[str] = ("mnist_fast", "mnist_tutorial"),
    search_samples: int = 2000,
    data_dir=None,
    out=None,
) -> dict:
    """f-AnoGAN's one-pass encoder against AnoGAN's latent search on the same GAN (MNIST,
    digit 0 normal): seconds per 10k test samples (compile excluded, reported apart) and AUROC.

    One f-AnoGAN is trained (``epochs`` GAN epochs, then ``epochs`` encoder epochs); its GAN is
    scored with the search of each preset in ``search_presets`` on the first
    ``search_samples`` test images (the encoder on those and on the whole test set).
    """
    from sklearn.metrics import roc_auc_score

    from jax_anomaly.config import DataConfig, TrainConfig
    from jax_anomaly.detectors import anogan, fanogan
    from jax_anomaly.runner import RunConfig, prepare_data

    data = prepare_data(RunConfig(data=DataConfig("mnist", (0,), data_dir=data_dir)))
    to_input = fanogan.DETECTOR.to_input
    x_train, x_val, x_test = to_input(data.x_train), to_input(data.x_val), to_input(data.x_test)
    cfg = fanogan.PRESETS["mnist_tutorial"]
    train = TrainConfig(epochs=epochs, batch_size=128)
    fitted = fanogan.fit(cfg, train, x_train, x_val, key=jax.random.key(0), progress=False)
    result = {
        "benchmark": "fanogan_vs_search",
        "device": str(jax.devices()[0]),
        "epochs": epochs,
        "train_seconds": fitted.result.train_seconds,
        "train_compile_seconds": fitted.result.compile_seconds,
        "matmul_peak_gflops": matmul_peak_gflops()["gflops"],
    }
    n_sub = min(search_samples, len(x_test))
    y_sub = data.y_test[:n_sub]
    for name, x, y in (("all", x_test, data.y_test), ("subset", x_test[:n_sub], y_sub)):
        t0 = time.perf_counter()
        scores = fanogan.score(fitted, x)["score"]  # first call compiles
        first = time.perf_counter() - t0
        seconds = min(time_calls(lambda x=x: fanogan.score(fitted, x), repeats=3))
        result[f"fanogan_{name}_n"] = len(x)
        result[f"fanogan_{name}_seconds_per_10k"] = seconds * 10000 / len(x)
        result[f"fanogan_{name}_compile_seconds"] = max(first - seconds, 0.0)
        result[f"fanogan_{name}_auroc"] = float(roc_auc_score(y, scores))
    gan = fanogan.as_anogan(fitted)
    for preset in search_presets:
        scfg = anogan.PRESETS[preset]
        t = _time_search(
            scfg, dataclasses.replace(gan, config=scfg), x_test[:n_sub], jax.random.key(1), repeats=1
        )
        per_10k = t["seconds"] * 10000 / n_sub
        result[f"search_{preset}_steps"] = scfg.search_steps
        result[f"search_{preset}_seconds_per_10k"] = per_10k
        result[f"search_{preset}_compile_seconds"] = t["compile_seconds"]
        result[f"search_{preset}_auroc"] = float(roc_auc_score(y_sub, t["scores"]))
        result[f"fanogan_speedup_vs_{preset}"] = per_10k / result["fanogan_subset_seconds_per_10k"]
    return _report(result, out)
