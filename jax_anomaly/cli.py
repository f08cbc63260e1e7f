"""The ``jax-anomaly`` command: parse flags, build a ``RunConfig``, call the library."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys

from jax_anomaly import thresholds
from jax_anomaly.config import MATMUL_PRECISIONS

EXIT_USAGE = 2


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None


def _add_run_flags(p: argparse.ArgumentParser, *, defaults: dict) -> None:
    from jax_anomaly.detectors import detector_names

    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        default=defaults["dataset"],
        help="mnist, fashion_mnist, digits, synthetic, npz:PATH or csv:PATH (default: %(default)s)",
    )
    g.add_argument(
        "--normal",
        default=defaults["normal"],
        help="normal class(es), e.g. 0 or 0,1,2,3,4 (default: %(default)s)",
    )
    g.add_argument(
        "--data-dir",
        help="data root searched first (then $JAX_ANOMALY_DATA, ../shared/data, /usr/share/datasets)",
    )
    g.add_argument(
        "--source",
        choices=["local", "tfds"],
        default="local",
        help="read IDX files (local) or tensorflow-datasets (needs TensorFlow + internet)",
    )
    g.add_argument(
        "--val-fraction", type=float, default=0.1, help="normal training data held out (default: %(default)s)"
    )
    g.add_argument(
        "--test-fraction",
        type=float,
        default=0.3,
        help="test split for data sets without one (default: %(default)s)",
    )
    g.add_argument("--label-column", default="label", help="label column of csv:PATH data (1 = anomaly)")
    g = p.add_argument_group("model and training")
    g.add_argument("--detector", default="ae", choices=detector_names(), help="(default: %(default)s)")
    g.add_argument("--preset", help="detector preset (default: the one for the data set)")
    g.add_argument("--hidden", type=_int_tuple, help="hidden layer sizes, e.g. 128,64,12")
    g.add_argument("--latent", type=int, help="latent size")
    g.add_argument("--loss", choices=["mse", "bce"], help="autoencoder loss (ae, aae)")
    g.add_argument(
        "--arch",
        choices=["dense", "conv"],
        help="networks: dense MLPs or convolutional (conv AE/VAE/AAE, DCGAN; square images)",
    )
    g.add_argument("--channels", type=_int_tuple, help="conv channels per stride-2 level, e.g. 32,64")
    g = p.add_argument_group("VAE (--detector vae) and AAE (--detector aae)")
    g.add_argument("--beta", type=float, help="VAE: weight of the KL term (default 1, the ELBO)")
    g.add_argument("--likelihood", choices=["bernoulli", "gaussian"], help="VAE decoder distribution")
    g.add_argument(
        "--vae-score",
        choices=["recon_prob", "elbo", "recon"],
        help="VAE score: -log reconstruction probability (default), negative ELBO, or squared error",
    )
    g.add_argument("--mc-samples", type=int, help="VAE: Monte-Carlo samples L per test sample (10)")
    g.add_argument("--prior-weight", type=float, help="AAE: weight of the codes' -log prior density (0)")
    g = p.add_argument_group("f-AnoGAN (--detector fanogan)")
    g.add_argument("--kappa", type=float, help="weight of the discriminator-feature residual (1)")
    g.add_argument("--encoder-epochs", type=int, help="epochs of the encoder phase (default: --epochs)")
    g = p.add_argument_group("AnoGAN scoring (--detector anogan)")
    g.add_argument(
        "--search-steps", type=int, help="Adam steps of the latent search per sample (default 500)"
    )
    g.add_argument("--search-lr", type=float, help="learning rate of the latent search (default 1e-2)")
    g.add_argument(
        "--lambda", dest="lam", type=float, help="weight of the discriminator part, in [0, 1] (0.1)"
    )
    g.add_argument("--anogan-loss", choices=["tutorial", "paper"], help="search loss (default tutorial)")
    g.add_argument("--score-batch", type=int, help="samples per vmapped chunk (default: chosen from N)")
    g.add_argument("--search-schedule", choices=["constant", "cosine"], help="step size schedule (constant)")
    g.add_argument("--search-init", type=int, help="random initial latents per sample, best one kept (1)")
    g = p.add_argument_group("optimiser")
    g.add_argument("--b1", type=float, help="Adam beta1 (default: 0.9 for autoencoders, 0.5 for GANs)")
    g.add_argument("--b2", type=float, default=0.999, help="Adam beta2 (default: %(default)s)")
    g.add_argument("--epochs", type=int, default=defaults["epochs"], help="(default: %(default)s)")
    g.add_argument("--batch-size", type=int, default=defaults["batch_size"], help="(default: %(default)s)")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    g.add_argument("--patience", type=int, help="early stopping patience in epochs (validation loss)")
    g.add_argument("--drop-remainder", action="store_true", help="drop the last partial batch of each epoch")
    g.add_argument(
        "--checkpoint-every",
        type=int,
        help="write <out>/checkpoint.msgpack every N epochs (atomically; the last one survives a crash)",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint (same flags and seed): ends with the same "
        "parameters as an uninterrupted run",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of every random choice (default: %(default)s)")
    g = p.add_argument_group("devices")
    g.add_argument(
        "--devices", type=int, help="train and score data-parallel over the first N devices (default: all; "
        "training on a single-host CPU uses one)"
    )
    g.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: call jax.distributed.initialize() first; on SLURM or Cloud TPU it finds "
        "its peers, elsewhere give the three flags below (see README)",
    )
    g.add_argument("--coordinator", help="with --distributed: HOST:PORT of process 0")
    g.add_argument("--num-processes", type=int, help="with --distributed: number of processes")
    g.add_argument("--process-id", type=int, help="with --distributed: this process's index")
    g = p.add_argument_group("scoring and output")
    g.add_argument(
        "--threshold",
        default=thresholds.DEFAULT_THRESHOLD,
        help="percentile:Q, mean_std:K, contamination:C, test_percentile:Q or best_f1 (oracle) "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--compare-threshold",
        action="append",
        default=[],
        help="another threshold spec to report beside the main one (repeatable)",
    )
    g.add_argument("--out", help="run folder (default: runs/<detector>-<dataset>-<time>)")
    g.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    g.add_argument("--quiet", action="store_true", help="no progress line")
    g.add_argument(
        "--precision",
        choices=sorted(MATMUL_PRECISIONS),
        help="matmul precision of training and scoring (default: the backend's; TF32 on recent GPUs)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jax-anomaly", description="Anomaly detection with autoencoders and GANs in JAX/Flax."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="dense autoencoder on the bundled 8x8 digits, digit 0 normal (no download)"
    )
    _add_run_flags(demo, defaults={"dataset": "digits", "normal": "0", "epochs": 100, "batch_size": 32})
    run = sub.add_parser("run", help="train a detector, score the test split, write a run folder")
    _add_run_flags(run, defaults={"dataset": "digits", "normal": "0", "epochs": 20, "batch_size": 128})
    bench = sub.add_parser("bench", help="throughput benchmarks (JSON out)")
    bsub = bench.add_subparsers(dest="which", required=True)
    b = bsub.add_parser("ae", help="dense AE training/scoring throughput on Fashion-MNIST class 0")
    b.add_argument("--epochs", type=int, default=20)
    b.add_argument("--batch-size", type=int, default=128)
    b.add_argument("--unroll", type=int, default=1, help="lax.scan unroll factor")
    b.add_argument("--data-dir")
    b.add_argument("--out", default="results/bench_ae.json")
    b = bsub.add_parser("anogan", help="AnoGAN search throughput on MNIST and the AUROC/time trade-off")
    b.add_argument("--run", help="run folder of experiments/mnist_anogan.py to take the GAN from")
    b.add_argument(
        "--gan-epochs",
        type=int,
        default=50,
        help="GAN training epochs timed here (the search uses this GAN unless --run)",
    )
    b.add_argument("--sizes", type=_int_tuple, default=(1000, 10000), help="test set sizes to time")
    b.add_argument("--steps", type=int, default=500, help="search iterations")
    b.add_argument("--no-curve", action="store_true", help="skip the trade-off curve")
    b.add_argument(
        "--precisions",
        type=lambda s: tuple(p for p in s.split(",") if p),
        default=(),
        help="also time the whole-set search under these matmul precisions, e.g. "
        "float32,tf32,bf16 (scores compared with the first)",
    )
    b.add_argument("--data-dir")
    b.add_argument("--out", default="results/bench_anogan.json")
    b = bsub.add_parser("scaling", help="data-parallel throughput on 1, 2, 4, 8 devices")
    b.add_argument(
        "--cpu-devices",
        type=int,
        default=8,
        help="virtual CPU devices to create when running on CPU (default: %(default)s)",
    )
    b.add_argument("--device-counts", type=_int_tuple, default=(1, 2, 4, 8))
    b.add_argument("--epochs", type=int, default=4)
    b.add_argument("--steps", type=int, default=50, help="AnoGAN search iterations")
    b.add_argument("--out", default="results/bench_scaling.json")
    return parser


def run_bench(args) -> None:
    from jax_anomaly import bench

    if args.which == "scaling":
        import jax

        jax.config.update("jax_num_cpu_devices", args.cpu_devices)  # before any device is used
        bench.bench_scaling(
            device_counts=args.device_counts, epochs=args.epochs, steps=args.steps, out=args.out
        )
    elif args.which == "ae":
        bench.bench_ae(
            epochs=args.epochs,
            batch_size=args.batch_size,
            unroll=args.unroll,
            data_dir=args.data_dir,
            out=args.out,
        )
    else:
        bench.bench_anogan(
            run_dir=args.run,
            gan_epochs=args.gan_epochs,
            sizes=args.sizes,
            steps=args.steps,
            curve=not args.no_curve,
            precisions=args.precisions,
            data_dir=args.data_dir,
            out=args.out,
        )


def config_from_args(args: argparse.Namespace):
    """A ``RunConfig`` from parsed flags (validates everything, raising ``ValueError``)."""
    from jax_anomaly.config import DataConfig, TrainConfig
    from jax_anomaly.data import parse_normal
    from jax_anomaly.detectors import get_detector
    from jax_anomaly.runner import RunConfig

    flags = {
        "--hidden": ("hidden", args.hidden),
        "--latent": ("latent", args.latent),
        "--loss": ("loss", args.loss),
        "--arch": ("arch", args.arch),
        "--channels": ("channels", args.channels),
        "--beta": ("beta", args.beta),
        "--likelihood": ("likelihood", args.likelihood),
        "--vae-score": ("score", args.vae_score),
        "--mc-samples": ("mc_samples", args.mc_samples),
        "--prior-weight": ("prior_weight", args.prior_weight),
        "--kappa": ("kappa", args.kappa),
        "--encoder-epochs": ("encoder_epochs", args.encoder_epochs),
        "--anogan-loss": ("loss", args.anogan_loss),
        "--search-steps": ("search_steps", args.search_steps),
        "--search-lr": ("search_lr", args.search_lr),
        "--lambda": ("lam", args.lam),
        "--score-batch": ("score_batch", args.score_batch),
        "--search-schedule": ("search_schedule", args.search_schedule),
        "--search-init": ("search_init", args.search_init),
    }
    # Flags that name a shared field ('loss') for one detector only; the rest apply wherever
    # the detector's config has the field.
    only_for = {"--loss": ("ae", "aae"), "--anogan-loss": ("anogan", "fanogan")}
    fields = {f.name for f in dataclasses.fields(get_detector(args.detector).config_cls)}
    model = {}
    for flag, (name, value) in flags.items():
        if value is None:
            continue
        if name not in fields or args.detector not in only_for.get(flag, (args.detector,)):
            raise ValueError(f"{flag} does not apply to detector '{args.detector}'")
        model[name] = value
    if args.resume and not args.out:
        raise ValueError("--resume needs --out: the run folder of the run to continue")
    out = (
        args.out
        or f"runs/{args.detector}-{args.dataset.replace(':', '_').replace('/', '_')}-"
        + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    )
    return RunConfig(
        detector=args.detector,
        preset=args.preset,
        model=model,
        data=DataConfig(
            dataset=args.dataset,
            normal=parse_normal(args.normal),
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
            data_dir=args.data_dir,
            source=args.source,
            label_column=args.label_column,
        ),
        train=TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            b1=args.b1,
            b2=args.b2,
            patience=args.patience,
            drop_remainder=args.drop_remainder,
            devices=args.devices,
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
        ),
        threshold=args.threshold,
        compare_thresholds=tuple(args.compare_threshold),
        seed=args.seed,
        out=out,
        plots=not args.no_plots,
        progress=not args.quiet,
        precision=args.precision,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 bad input or data, 1 training diverged)."""
    args = build_parser().parse_args(argv)
    if not getattr(args, "distributed", False) and getattr(args, "which", None) != "scaling":
        from jax_anomaly.sharding import use_cpu_cores_as_devices

        use_cpu_cores_as_devices()  # one CPU device per core for scoring (GPUs unaffected)
    from jax_anomaly.runner import print_summary, run
    from jax_anomaly.training import TrainingDivergedError

    try:
        if args.command == "bench":
            run_bench(args)
            return 0
        cfg = config_from_args(args)
        if args.distributed:
            import jax

            jax.distributed.initialize(
                coordinator_address=args.coordinator,
                num_processes=args.num_processes,
                process_id=args.process_id,
            )
        summary = run(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"jax-anomaly: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDivergedError as e:
        print(f"jax-anomaly: error: {e}", file=sys.stderr)
        return 1
    print_summary(summary, cfg.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
