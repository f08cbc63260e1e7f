"""Benchmarks (``jax-anomaly bench``): measurement helpers (``measure``), one JSON schema
(``report``, documented in ``docs/benchmarks.md``), and one module per benchmark: ``train``
and ``score`` (any registered detector on any data set), ``search`` (AnoGAN's search and
f-AnoGAN), ``scaling`` (devices)."""
