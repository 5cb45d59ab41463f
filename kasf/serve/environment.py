"""The environment PyTriton's tritonserver and its Python backend stubs need on this interpreter.

Two things keep a stock `nvidia-pytriton` 0.7.0 from serving a kasf engine, and kasf fixes both for
the server it starts, not leaving them to the user:

- The stub links `libpython3.X.so`, and finds the system's copy (Debian's 3.11.2) before the
  running interpreter's (pyenv's 3.11.7, say); the two differ and model loading fails with
  "'_thread.RLock' object has no attribute '_recursion_count'". The interpreter's own LIBDIR goes
  first on the server's LD_LIBRARY_PATH.
- The stub is built with pybind11 2.10, which reads numpy 2 arrays as empty: every response comes
  back with no data ("cannot reshape array of size 0", triton-inference-server/python_backend#384,
  fixed there by pybind11 2.12 but not in PyTriton's wheel). kasf needs numpy 2, so the stubs run in
  a virtual environment of this interpreter's base with numpy < 2 of its own, which then sees this
  interpreter's site-packages through a .pth file (PyTriton, zmq; this interpreter may be a venv
  itself). The stub picks its prefix from the `python3` first on PATH, which PyTriton takes from
  sys.exec_prefix. Only the stubs use it: they copy tensors between the server and this process.

A third one shows with two or more instances. Triton initializes a model's instances in parallel,
and PyTriton's instances 1..N-1 fetch their configuration from a socket instance 0 opens: they wait
1 s for its file, then connect once. When instance 0 is late, or the file exists but nobody listens
yet (between bind and listen), the load fails with "Timeout occurred while waiting for config file"
or "[Errno 111] Connection refused" (seen in CI on a loaded 2-core machine). The copy of PyTriton's
`communication.py` the stubs get therefore fetches again until HANDSHAKE_WAIT_S have passed.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import venv
from pathlib import Path
from typing import Iterator

from ..errors import KasfError
from ..files import default_cache_dir

PYTRITON = "nvidia-pytriton"
STUB_NUMPY = "numpy>=1.21,<2"
PTH_NAME = "kasf-parent-site-packages.pth"
HANDSHAKE_WAIT_S = 45.0  # under the 60 s PyTriton gives the load request, so a real failure is reported
HANDSHAKE_RETRY = f'''

_pytriton_get_config_from_handshake_server = get_config_from_handshake_server


def get_config_from_handshake_server(socket_path, timeout_s=1.0):
    """kasf: fetched again until instance 0 listens, or {HANDSHAKE_WAIT_S:.0f} s have passed."""
    deadline = time.monotonic() + max(timeout_s, {HANDSHAKE_WAIT_S})
    while True:
        try:
            return _pytriton_get_config_from_handshake_server(socket_path, timeout_s)
        except (ConnectionRefusedError, FileNotFoundError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
'''
INSTALL_HINT = (f"pip install --no-deps {PYTRITON}==0.7.0 && pip install 'kasf[serve]' (PyTriton pins numpy < 2, "
                "kasf needs numpy 2: see the README's 'Serving' section)")


def require_pytriton() -> str:
    """PyTriton's version, or a KasfError saying how to install it."""
    try:
        version = importlib.metadata.version(PYTRITON)
        import pytriton.triton  # noqa: F401
    except (importlib.metadata.PackageNotFoundError, ImportError) as err:
        raise KasfError(f"kasf serve needs PyTriton ({err}): {INSTALL_HINT}") from err
    return version


def default_stub_env() -> Path:
    return default_cache_dir() / f"pytriton-stub-py{sys.version_info.major}{sys.version_info.minor}"


def stub_numpy_version(env: Path) -> str | None:
    """numpy's version as the environment's Python sees it, None when it has none or cannot run."""
    python = env / "bin" / "python3"
    if not python.exists():
        return None
    found = subprocess.run([str(python), "-c", "import numpy; print(numpy.__version__)"],
                           capture_output=True, text=True, timeout=120)
    return found.stdout.strip() if found.returncode == 0 else None


def parent_site_packages() -> str:
    """The .pth text that shows the stubs this interpreter's site-packages, after their own."""
    folders = [path for path in sys.path if Path(path).name in ("site-packages", "dist-packages")]
    return "".join(f"{path}\n" for path in dict.fromkeys(folders))


def _site_packages(env: Path) -> Path:
    return env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def prepare_stub_env(env: Path | None = None) -> Path:
    """The stubs' environment: made (staged beside its place, then renamed) when it is missing, its
    numpy is 2 or later, or it shows another interpreter's packages. Making it needs PyPI or pip's
    cache for numpy < 2."""
    import numpy

    if int(numpy.__version__.split(".")[0]) < 2:
        return Path(sys.exec_prefix)
    env = Path(env) if env is not None else default_stub_env()
    link = _site_packages(env) / PTH_NAME
    found = stub_numpy_version(env)
    if found is not None and int(found.split(".")[0]) < 2 and link.is_file() \
            and link.read_text() == parent_site_packages():
        return env
    env.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{env.name}.", dir=env.parent))
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(staging)
        installed = subprocess.run([str(staging / "bin" / "python3"), "-m", "pip", "install", "-q",
                                    "--disable-pip-version-check", STUB_NUMPY],
                                   capture_output=True, text=True, timeout=600)
        if installed.returncode != 0:
            raise KasfError(f"could not make the Python backend stubs' environment {env} ({STUB_NUMPY}): "
                            f"{installed.stderr.strip()[-600:]}")
        (_site_packages(staging) / PTH_NAME).write_text(parent_site_packages())
        shutil.rmtree(env, ignore_errors=True)
        staging.rename(env)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return env


def proxy_files_with_handshake_retry(files: dict[str, bytes]) -> dict[str, bytes]:
    """PyTriton's proxy files for a stub, its communication.py ending in HANDSHAKE_RETRY (model.py
    imports the name after the module ran, so the retrying one is what it calls)."""
    patched = dict(files)
    for name, text in files.items():
        if name.endswith("/communication.py"):
            patched[name] = text + HANDSHAKE_RETRY.encode()
    return patched


@contextlib.contextmanager
def server_environment(stub_env: Path) -> Iterator[None]:
    """While PyTriton starts tritonserver (it copies os.environ then) and loads the models: the
    interpreter's LIBDIR first on LD_LIBRARY_PATH, the stubs' Python taken from stub_env, and the
    stubs' handshake retried; all restored afterwards."""
    from pytriton.models.model import Model
    from pytriton.server import triton_server

    saved_path = os.environ.get("LD_LIBRARY_PATH")
    saved_env = triton_server.get_triton_python_backend_python_env
    saved_files = Model.get_proxy_model_files
    libdir = sysconfig.get_config_var("LIBDIR")
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, saved_path) if p)
    triton_server.get_triton_python_backend_python_env = lambda: Path(stub_env)
    Model.get_proxy_model_files = lambda model: proxy_files_with_handshake_retry(saved_files(model))
    try:
        yield
    finally:
        Model.get_proxy_model_files = saved_files
        triton_server.get_triton_python_backend_python_env = saved_env
        if saved_path is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = saved_path
