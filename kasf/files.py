"""Files kasf writes: atomically, so that a crash or a kill never leaves a half-written one behind,
and the one cache directory every stage shares."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | Path, write: Callable[[str], None], suffix: str = ".tmp") -> Path:
    """Call write(temporary_path) in path's directory, then rename the result onto path. suffix:
    the temporary file's, for writers that insist on one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make the file private to its writer
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, value: Any) -> Path:
    """A JSON report, written atomically (never half a file); values JSON cannot hold are written as text."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(value, indent=2, default=str)))


def default_cache_dir() -> Path:
    """$KASF_CACHE_DIR, else ~/.cache/kasf: derived data, compiled engines, timing caches."""
    return Path(os.environ.get("KASF_CACHE_DIR") or Path.home() / ".cache" / "kasf").expanduser()
