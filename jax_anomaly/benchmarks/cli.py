"""``jax-anomaly bench``: the benchmark subcommands and their flags."""

from __future__ import annotations

import jax

from jax_anomaly.benchmarks.scaling import bench_scaling
from jax_anomaly.benchmarks.score import bench_score
from jax_anomaly.benchmarks.search import bench_fanogan, bench_search
from jax_anomaly.benchmarks.tabular import bench_tabular
from jax_anomaly.benchmarks.train import Target, bench_train
from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import detector_names


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(",") if t.strip())


def add_bench_parser(sub) -> None:
    bench = sub.add_parser("bench", help="throughput benchmarks (one JSON schema, docs/benchmarks.md)")
    bsub = bench.add_subparsers(dest="which", required=True)
    for name, text in (
        ("train", "training throughput of any detector"),
        ("score", "scoring throughput of any detector"),
    ):
        b = bsub.add_parser(name, help=text)
        b.add_argument("--detector", default="ae", choices=detector_names())
        b.add_argument("--dataset", default="fashion_mnist" if name == "train" else "mnist")
        b.add_argument("--normal", type=_ints, default=(0,))
        b.add_argument("--preset", help="detector preset (default: the one for the data set)")
        b.add_argument("--epochs", type=int, default=20 if name == "train" else 1)
        b.add_argument("--batch-size", type=int, default=128)
        b.add_argument("--unroll", type=int, default=1, help="lax.scan unroll factor")
        if name == "score":
            b.add_argument("--sizes", type=_ints, default=(10000,), help="samples to score, e.g. 1000,10000")
            b.add_argument(
                "--search-steps", type=int, help="AnoGAN: search iterations (default: the preset's)"
            )
            b.add_argument("--progress", action="store_true", help="also time scoring with the progress line")
        b.add_argument("--data-dir")
        b.add_argument("--out", default=f"results/benchmarks/bench_{name}.json")
    b = bsub.add_parser("search", help="AnoGAN search: AUROC against length and schedule, matmul precisions")
    b.add_argument("--gan-epochs", type=int, default=50)
    b.add_argument("--subset", type=int, default=2000)
    b.add_argument("--steps", type=_ints, default=(10, 25, 50, 100, 200, 500))
    b.add_argument("--precisions", type=lambda s: tuple(p for p in s.split(",") if p), default=())
    b.add_argument("--data-dir")
    b.add_argument("--out", default="results/benchmarks/bench_search.json")
    b = bsub.add_parser("fanogan", help="f-AnoGAN's encoder against AnoGAN's search on one GAN")
    b.add_argument("--epochs", type=int, default=30)
    b.add_argument("--subset", type=int, default=2000)
    b.add_argument("--data-dir")
    b.add_argument("--out", default="results/benchmarks/bench_fanogan.json")
    b = bsub.add_parser("tabular", help="the default tabular detector's fit and score times against rows")
    b.add_argument("--rows", type=_ints, default=(10_000, 100_000, 1_000_000))
    b.add_argument("--features", type=int, default=100)
    b.add_argument("--out", default="results/benchmarks/bench_tabular.json")
    b = bsub.add_parser("scaling", help="data-parallel throughput on 1, 2, 4, 8 devices")
    b.add_argument("--cpu-devices", type=int, default=8, help="virtual CPU devices to create on a CPU")
    b.add_argument("--device-counts", type=_ints, default=(1, 2, 4, 8))
    b.add_argument("--epochs", type=int, default=4)
    b.add_argument("--steps", type=int, default=50, help="AnoGAN search iterations")
    b.add_argument("--out", default="results/benchmarks/bench_scaling.json")


def run_bench(args) -> dict:
    if args.which in ("train", "score"):
        search = {"search_steps": args.search_steps} if getattr(args, "search_steps", None) else None
        target = Target(args.detector, args.dataset, args.normal, args.preset, search, args.data_dir)
        train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, unroll=args.unroll)
        if args.which == "train":
            return bench_train(target, train, out=args.out)
        return bench_score(
            target, train, sizes=args.sizes, progress=getattr(args, "progress", False), out=args.out
        )
    if args.which == "tabular":
        return bench_tabular(rows=args.rows, features=args.features, out=args.out)
    common = {"data_dir": args.data_dir, "out": args.out} if args.which != "scaling" else {"out": args.out}
    if args.which == "search":
        return bench_search(
            gan_epochs=args.gan_epochs,
            subset=args.subset,
            step_counts=args.steps,
            precisions=args.precisions,
            **common,
        )
    if args.which == "fanogan":
        return bench_fanogan(epochs=args.epochs, subset=args.subset, **common)
    jax.config.update("jax_num_cpu_devices", args.cpu_devices)  # before any device is used

    return bench_scaling(device_counts=args.device_counts, epochs=args.epochs, steps=args.steps, out=args.out)
