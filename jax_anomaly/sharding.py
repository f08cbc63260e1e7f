"""Data parallelism over devices with ``jax.sharding``: one mesh axis ``'data'``.

Training: parameters and optimiser state are replicated, each step's batch is sharded
along ``'data'`` and the compiler averages the gradients (``jit`` with shardings; see
``training.loop``). Scoring: samples are sharded along ``'data'`` and each device maps
the per-sample function over its own rows in chunks (``shard_map`` + ``lax.map``), so the
chunk size still bounds memory per device.

One device is the 1-sized mesh: the same code path. With several devices, each device
holds its own contiguous shard of the training rows (``device_shards``) and draws its part
of every batch from it. Across hosts, call ``jax.distributed.initialize()`` first
(``--distributed`` in the CLI, ``jax-anomaly launch`` for local processes); the mesh spans
all devices of all processes, and a run gives each process only its share of the training
and test rows (``process_share``); scores are gathered once at the end (``gather_shares``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jax_anomaly.data.one_class import row_share

AXIS = "data"


LOCAL = "local"  # ``devices=LOCAL``: this process's own devices (it scores its own share)


@functools.lru_cache(maxsize=8)
def make_mesh(devices: int | str | None = None) -> Mesh:
    """A 1-d mesh ``('data',)`` over the first ``devices`` visible devices (None: all; ``LOCAL``:
    this process's devices, for work on rows only this process holds).

    Raises:
      ValueError: ``devices`` < 1 or more than are visible.
    """
    if devices == LOCAL:
        return Mesh(np.asarray(jax.local_devices()), (AXIS,))
    available = jax.devices()
    n = len(available) if devices is None else int(devices)
    if not 1 <= n <= len(available):
        raise ValueError(
            f"devices must be between 1 and the {len(available)} visible device(s) "
            f"({available[0].platform}), got {devices}"
        )
    return Mesh(np.asarray(available[:n]), (AXIS,))


def train_devices(devices: int | None) -> int | None:
    """The device count training uses for ``devices`` (None: all visible), except that a
    single-host CPU trains on one device: its devices share the same cores, and splitting
    each batch over them only adds the gradient all-reduce (measured on 2 cores with one
    device per core: AE training 1.6x, GAN training 2.3x slower than on one device)."""
    if devices is None and jax.default_backend() == "cpu" and jax.process_count() == 1:
        return 1
    return devices


def use_cpu_cores_as_devices(cores: int | None = None) -> int | None:
    """Makes JAX expose one CPU device per core (``jax_num_cpu_devices``), so scoring, which
    shards samples over all devices, runs one program per core: on 2 cores the AnoGAN
    search ran about 10 % faster than one program using both cores (docs/benchmarks.md; measured on 2
    cores only). Training is not affected (``train_devices``).

    Only possible before JAX starts its backends, and skipped when the user chose a device
    count (``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``, or the config
    already set). Returns the device count set, or None when nothing was changed.
    """

    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return None
    if jax.config.jax_num_cpu_devices not in (-1, None):
        return None
    cores = cores or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    try:
        jax.config.update("jax_num_cpu_devices", int(cores))
    except RuntimeError:  # JAX already started: keep its devices
        return None
    return int(cores)


def place(tree, sharding: NamedSharding):
    """``jax.device_put(tree, sharding)``, also where ``sharding`` spans several processes:
    every process holds the same host values (``tree``) and puts its own devices' parts
    (typed PRNG keys through their raw data)."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def one(a):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            impl = jax.random.key_impl(a)
            return jax.random.wrap_key_data(one(jax.random.key_data(a)), impl=impl)
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(one, tree)


def gather(tree):
    """``tree``'s arrays whole on every process (a collective with several processes: all of
    them call it); with one process, unchanged."""
    if jax.process_count() == 1:
        return tree
    return multihost_utils.process_allgather(tree, tiled=True)


def process_share(n: int, index: int | None = None, count: int | None = None) -> slice:
    """The rows of ``n`` that process ``index`` of ``count`` holds (default: this process of
    ``jax.process_count()``): ``data.one_class.row_share``, the one rule of who holds what.
    The loaders read these rows, the training loop places them on the process's devices,
    and scores come back in this order (``gather_shares``)."""
    index = jax.process_index() if index is None else index
    return row_share(n, index, jax.process_count() if count is None else count)


def mesh_processes(mesh: Mesh) -> list[int]:
    """The indices of the processes whose devices ``mesh`` spans, sorted."""
    return sorted({d.process_index for d in mesh.devices.flat})


def device_shards(n: int, mesh: Mesh) -> list[tuple[int, int]]:
    """``(start, count)`` of the training rows each device of ``mesh`` holds, in mesh order:
    each process's ``process_share`` of ``n`` split into contiguous runs of
    ``ceil(share / its devices)`` rows over its devices. With one process this is ``n`` split
    over the devices; with one device per process, the process shares themselves."""
    devices = list(mesh.devices.flat)
    processes = mesh_processes(mesh)
    shards = {}
    for rank, p in enumerate(processes):
        share = process_share(n, rank, len(processes))
        mine = [d for d in devices if d.process_index == p]
        size = -(-(share.stop - share.start) // len(mine))
        for i, d in enumerate(mine):
            start = min(share.start + i * size, share.stop)
            shards[d.id] = (start, min(start + size, share.stop) - start)
    return [shards[d.id] for d in devices]


def place_shards(tree, n: int, mesh: Mesh, local: bool):
    """``tree``'s arrays (rows first) as global arrays of ``len(mesh) * s`` rows split over
    ``mesh``: device d's block holds its ``device_shards`` rows, padded to ``s`` (the largest
    shard) with zeros. ``local``: ``tree`` holds only this process's ``process_share`` of the
    ``n`` rows; else all of them. Returns ``(arrays, counts)``, counts the real rows per device."""
    shards = device_shards(n, mesh)
    size = max(1, max(c for _, c in shards))
    processes = mesh_processes(mesh)
    offset = process_share(n, processes.index(jax.process_index()), len(processes)).start if local else 0
    sharding = rows(mesh)

    def one(a):
        a = np.asarray(a)

        def block(index):
            d = (index[0].start or 0) // size
            start, count = shards[d]
            out = np.zeros((size, *a.shape[1:]), a.dtype)
            out[:count] = a[start - offset : start - offset + count]
            return out[(slice(None), *index[1:])]

        return jax.make_array_from_callback((size * len(shards), *a.shape[1:]), sharding, block)

    return jax.tree.map(one, tree), [c for _, c in shards]


def gather_shares(tree):
    """Each process's arrays (its ``process_share`` of the rows, a different length per
    process) concatenated in process order on every process (a collective: all call it);
    with one process, unchanged."""
    if jax.process_count() == 1:
        return tree
    counts = multihost_utils.process_allgather(np.asarray([len(jax.tree.leaves(tree)[0])]))
    size = int(counts.max())

    def pad(a):
        a = np.asarray(a)
        return np.concatenate([a, np.zeros((size - len(a), *a.shape[1:]), a.dtype)])

    padded = jax.tree.map(pad, tree)
    every = multihost_utils.process_allgather(padded, tiled=False)  # (processes, size, ...)
    return jax.tree.map(
        lambda a: np.concatenate([a[p, : int(c)] for p, c in enumerate(counts.reshape(-1))]), every
    )


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def rows(mesh: Mesh) -> NamedSharding:
    """Leading axis split over ``'data'``."""
    return NamedSharding(mesh, P(AXIS))


def replicate(tree, mesh: Mesh):
    """Puts every array of ``tree`` on all devices of ``mesh``; an array replicated over the
    devices of several processes (trained parameters) moves to a mesh of this process's own
    devices from its local copy."""

    def local_copy(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable and a.is_fully_replicated:
            return a.addressable_data(0)
        return a

    if len(mesh_processes(mesh)) == 1 and jax.process_count() > 1:
        tree = jax.tree.map(local_copy, tree)
    return jax.device_put(tree, replicated(mesh))


def padded_size(n: int, multiple: int) -> int:
    """``n`` rounded up to a multiple of ``multiple``."""
    return -(-n // multiple) * multiple


def pad_to(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` with copies of its first row appended up to ``n`` rows (the caller drops the
    extra outputs); one compiled shape serves a last, shorter slice."""
    return x if len(x) >= n else np.concatenate([x, np.repeat(x[:1], n - len(x), axis=0)])


def pad_rows(x: np.ndarray, multiple: int) -> np.ndarray:
    """``x`` with copies of its first row appended until its length divides by ``multiple``
    (the caller drops the extra outputs)."""
    return pad_to(x, padded_size(len(x), multiple))


def shard_samples(local_fn: Callable, mesh: Mesh) -> Callable:
    """``fn(params, *xs) -> outputs`` over all samples, with ``xs`` (N, ...) sharded by rows
    over ``mesh`` and ``local_fn(params, *local_xs)`` run on each device's rows; outputs are
    per-sample arrays (N, ...) sharded the same way. Jitted; N must divide by the mesh size
    (use ``map_samples`` for any N)."""

    def fn(params, *xs):
        return jax.shard_map(
            local_fn,
            mesh=mesh,
            in_specs=(P(), *(P(AXIS) for _ in xs)),
            out_specs=P(AXIS),
            check_vma=False,
        )(params, *xs)

    return jax.jit(fn)


def place_samples(mesh: Mesh, params, *xs) -> tuple:
    """``(params, xs)`` placed for a ``shard_samples`` function: ``params`` replicated, each
    array of ``xs`` padded to a multiple of the device count and split by rows."""
    d = mesh.devices.size
    return replicate(params, mesh), tuple(jax.device_put(pad_rows(np.asarray(x), d), rows(mesh)) for x in xs)


def map_samples(fn: Callable, mesh: Mesh, params, *xs) -> dict:
    """Runs a ``shard_samples`` function on any number of samples: pads the rows to a
    multiple of the device count, shards them, and returns NumPy outputs for the real rows."""
    n = len(xs[0])
    params, xs = place_samples(mesh, params, *xs)
    out = fn(params, *xs)
    if len(mesh_processes(mesh)) > 1:  # rows on other hosts too: gather them
        out = multihost_utils.process_allgather(out, tiled=True)
    return jax.tree.map(lambda a: np.asarray(a)[:n], out)


def local_rows(n: int, mesh: Mesh) -> int:
    """Rows per device once ``n`` samples are padded and sharded over ``mesh``."""
    return padded_size(n, mesh.devices.size) // mesh.devices.size


def constrain_rows(tree, mesh: Mesh):
    """Inside jit: asks the compiler to keep ``tree``'s leading axis split over ``'data'``."""
    return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, rows(mesh)), tree)
