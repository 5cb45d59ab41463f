"""Opening what `kasf optimize` wrote: DIR/best.json says which file, backend and options."""

from __future__ import annotations

import json
from pathlib import Path

from ..engines import Engine, load_engine
from ..errors import KasfError


def load_best(out_dir: str | Path, **options) -> Engine:
    """The winner of `kasf optimize --out DIR`, opened as it was measured (options add to its own)."""
    sidecar = Path(out_dir) / "best.json"
    if not sidecar.is_file():
        raise KasfError(f"{sidecar} does not exist: run `kasf optimize ... --out {out_dir}` (a run where no "
                        "candidate passed writes no best)")
    try:
        record = json.loads(sidecar.read_text())
        path, backend, recorded = sidecar.with_name(record["file"]), record["backend"], record["options"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise KasfError(f"{sidecar} is not a kasf optimize record ({type(err).__name__}: {err})") from None
    return load_engine(path, backend, **{**recorded, **options})
