"""Measurement helpers shared by every benchmark: FLOPs counted from a function's jaxpr,
an in-run ``jnp.dot`` peak, timed compiled calls, memory, and a step's time broken down.

Figures are meant to be read as ratios measured in the same process (achieved GFLOP/s
against the peak of that run), since shared machines drift between runs.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from jax_anomaly.sharding import make_mesh, rows


def step_matmuls(fn: Callable, *args) -> list[tuple]:
    """The matrix products ``fn(*args)`` performs: ``(lhs aval, rhs aval, params, count)`` of
    every ``dot_general`` in its jaxpr, nested jaxprs (jit, custom VJPs, loops) included;
    ``count`` is how often it runs (a product inside a ``scan`` of length L counts L times;
    one inside a ``while`` loop, whose trip count is unknown, once)."""
    found = []

    def walk(jaxpr, count):
        for eqn in jaxpr.eqns:
            if eqn.primitive is jax.lax.dot_general_p:
                found.append((eqn.invars[0].aval, eqn.invars[1].aval, dict(eqn.params), count))
            inner_count = count * eqn.params.get("length", 1) if eqn.primitive.name == "scan" else count
            for value in eqn.params.values():
                for sub in value if isinstance(value, tuple | list) else (value,):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        walk(inner, inner_count)

    walk(jax.make_jaxpr(fn)(*args).jaxpr, 1)
    return found


def matmul_flops(matmuls: Sequence[tuple]) -> int:
    """FLOPs of ``step_matmuls``' products: 2 x output size x contracted size x count each."""
    total = 0
    for lhs, rhs, params, count in matmuls:
        (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = params["dimension_numbers"]
        lhs_free = [d for i, d in enumerate(lhs.shape) if i not in (*lhs_contract, *lhs_batch)]
        rhs_free = [d for i, d in enumerate(rhs.shape) if i not in (*rhs_contract, *rhs_batch)]
        sizes = [lhs.shape[i] for i in (*lhs_batch, *lhs_contract)] + lhs_free + rhs_free
        total += 2 * int(np.prod(sizes)) * count
    return total


def matmul_only_epoch(matmuls: Sequence[tuple], steps: int) -> tuple[Callable, list]:
    """``(epoch, operands)``: ``epoch(operands)`` runs ``steps`` iterations of a ``lax.scan``
    doing only ``matmuls`` (one training step's products, as ``step_matmuls`` lists them) on
    constant operands, jitted."""
    operands = [(jnp.full(a.shape, 0.01, a.dtype), jnp.full(b.shape, 0.01, b.dtype)) for a, b, *_ in matmuls]

    def epoch(operands):
        def body(carry, _):
            # The barrier ties the operands to the loop carry, so the products are not
            # hoisted out of the loop; the second one keeps each product whole.
            ops, carry = jax.lax.optimization_barrier((operands, carry))
            outs = [
                jax.lax.dot_general_p.bind(a, b, **p)
                for (a, b), (_, _, p) in zip(ops, [m[:3] for m in matmuls], strict=True)
            ]
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


def step_breakdown(
    step: Callable, state, batch: np.ndarray, n: int, epoch_seconds: float, peak_gflops: float
) -> dict:
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

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_memory_mib() -> float | None:
    """Peak device memory in use (MiB) where the backend reports it (GPU), else None."""
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**20


def summarize(values: Sequence[float]) -> dict:
    v = np.asarray(values, np.float64)
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}
