"""The stubs' handshake with PyTriton's instance 0, when instance 0 is late: the race that failed a
two-instance server in CI, reproduced with PyTriton's own proxy files and HandshakeServer."""

import importlib
import socket
import sys
import threading
import time
from types import SimpleNamespace

import pytest

pytest.importorskip("pytriton.triton", reason="the nvidia-pytriton wheel is not installed here; .ci/run installs it")

from pytriton.models.model import Model  # noqa: E402
from pytriton.proxy import communication as pytriton_communication  # noqa: E402

from kasf.serve.environment import proxy_files_with_handshake_retry  # noqa: E402

CONFIG = {"data_socket": "/nowhere", "authkey": "a2FzZg=="}


def proxy_files() -> dict[str, bytes]:
    """What PyTriton sends Triton for a model of version 1."""
    return Model.get_proxy_model_files(SimpleNamespace(model_version=1, SCRIPT_FILES_TO_COPY=Model.SCRIPT_FILES_TO_COPY))


@pytest.fixture
def stub_package(tmp_path, monkeypatch):
    """The proxy package a stub gets, written and imported the way Triton's Python backend does."""
    files = proxy_files_with_handshake_retry(proxy_files())
    package = tmp_path / "kasf_stub_proxy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, text in files.items():
        (package / name.split("/")[-1]).write_bytes(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("kasf_stub_proxy.communication")
    for module in [name for name in sys.modules if name.startswith("kasf_stub_proxy")]:
        del sys.modules[module]


def late_instance_zero(path, servers: list, bound_s: float = 0.5, listen_s: float = 2.0) -> threading.Thread:
    """Instance 0 as CI saw it: the socket file appears (bound, nobody listening), then later it serves."""
    def run():
        time.sleep(bound_s)
        early = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        early.bind(str(path))
        time.sleep(listen_s - bound_s)
        early.close()
        server = pytriton_communication.HandshakeServer(path, CONFIG)
        server.start()
        servers.append(server)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_pytriton_alone_fails_when_instance_zero_is_late(tmp_path):
    path = tmp_path / "m-config.sock"
    servers = []
    thread = late_instance_zero(path, servers, bound_s=0.2, listen_s=1.5)
    with pytest.raises(ConnectionRefusedError):
        pytriton_communication.get_config_from_handshake_server(path)
    thread.join()
    servers[0].close()


def test_the_stubs_copy_waits_for_instance_zero(stub_package, tmp_path):
    path = tmp_path / "m-config.sock"
    servers = []
    thread = late_instance_zero(path, servers)
    start = time.monotonic()
    assert stub_package.get_config_from_handshake_server(path) == CONFIG
    assert time.monotonic() - start >= 2.0
    thread.join()
    servers[0].close()


def test_only_communication_py_changes():
    files = proxy_files()
    patched = proxy_files_with_handshake_retry(files)
    assert patched.keys() == files.keys()
    changed = [name for name in files if patched[name] != files[name]]
    assert changed == ["file:1/communication.py"]
    assert patched[changed[0]].startswith(files[changed[0]])
