"""The data roots searched, in order, for every data set's files."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "JAX_ANOMALY_DATA"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def data_roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The data roots searched in order: ``data_dir``, ``$JAX_ANOMALY_DATA``,
    ``../shared/data`` (from the working directory and from the project root) and
    ``/usr/share/datasets``."""
    roots = []
    if data_dir:
        if not Path(data_dir).is_dir():
            raise ValueError(f"data directory {data_dir} does not exist (given with --data-dir / data_dir)")
        roots.append(Path(data_dir))
    if os.environ.get(DATA_ENV_VAR):
        roots.append(Path(os.environ[DATA_ENV_VAR]))
    roots += [
        Path("../shared/data"),
        _PROJECT_ROOT.parent / "shared" / "data",
        Path("/usr/share/datasets"),
    ]
    unique = []
    for r in roots:
        if r.resolve() not in [u.resolve() for u in unique]:
            unique.append(r)
    return unique


def find_in_roots(relative: str | Path, data_dir=None, *, what: str, how: str, kind: str = "dir") -> Path:
    """The first ``<root>/relative`` over ``data_roots(data_dir)`` that is a folder
    (``kind='dir'``) or a file (``kind='file'``).

    Raises:
      FileNotFoundError: in no root; the message names ``what``, every path tried and
        ``how`` to get it.
    """
    tried = []
    for root in data_roots(data_dir):
        candidate = root / relative
        tried.append(str(candidate))
        if candidate.is_dir() if kind == "dir" else candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{what} not found; looked in: {', '.join(tried)}. {how} "
        f"(set --data-dir or ${DATA_ENV_VAR} for another root)."
    )
