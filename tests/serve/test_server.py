"""`kasf serve` on a real Triton server (PyTriton's tritonserver), on loopback: a subprocess of the
CLI, real tritonclient requests over HTTP and gRPC, bad requests, the streaming model, SIGTERM."""

import subprocess
import threading

import numpy as np
import pytest

from kasf.engines import load_engine
from kasf.serve.load import batches_since, kill_instance, run_level
from kasf.serve.process import ServerProcess
from kasf.serve.streaming import StreamFrame, in_order
from kasf.stream import StreamRuntime

try:
    import pytriton.triton  # noqa: F401
    PYTRITON = None
except ImportError as err:   # the wheel is x86-64/aarch64 Linux only, on Python 3.8-3.12
    PYTRITON = f"the nvidia-pytriton wheel is not installed here ({err}); .ci/run installs it"

needs_pytriton = pytest.mark.skipif(PYTRITON is not None, reason=PYTRITON or "")


@pytest.fixture(scope="module")
def server(tiny_onnx, tmp_path_factory):
    if PYTRITON is not None:
        pytest.skip(PYTRITON)
    log = tmp_path_factory.mktemp("serve") / "tritonserver.log"
    process = ServerProcess(tiny_onnx, ["--threads", "1", "--instances", "2", "--preferred-batch", "2", "4",
                                        "--max-batch", "8", "--max-queue-delay-us", "2000", "--log-file", log])
    with process:
        yield process
    process.kill()


@pytest.fixture(scope="module")
def engine(tiny_onnx):
    return load_engine(tiny_onnx, threads=1)


def keypoints(batch: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.uniform(-1, 1, (batch, 27, 17, 3)).astype(np.float32)
    values[..., 2] = rng.uniform(0.3, 1, (batch, 27, 17))
    return values


def infer(client_module, url, values, dtype="FP32", model="kasportsformer"):
    client = client_module.InferenceServerClient(url)
    request = client_module.InferInput("keypoints_2d", list(values.shape), dtype)
    request.set_data_from_numpy(values)
    return client.infer(model, [request]).as_numpy("poses_3d")


@needs_pytriton
def test_server_is_live_ready_and_batches_as_configured(server):
    import tritonclient.grpc as grpc
    import tritonclient.http as http

    for module, url in ((http, server.http), (grpc, server.grpc)):
        client = module.InferenceServerClient(url)
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("kasportsformer") and client.is_model_ready("kasportsformer_stream")
    config = grpc.InferenceServerClient(server.grpc).get_model_config("kasportsformer").config
    assert config.max_batch_size == 8
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4]
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert sum(group.count for group in config.instance_group) == 2
    assert [list(i.dims) for i in config.input] == [[27, 17, 3]] and config.output[0].name == "poses_3d"


@needs_pytriton
def test_responses_equal_the_engines_own_outputs(server, engine):
    import tritonclient.grpc as grpc
    import tritonclient.http as http

    values = keypoints(3, seed=0)
    expected = engine.infer(values)
    for module, url in ((http, server.http), (grpc, server.grpc)):
        np.testing.assert_allclose(infer(module, url, values), expected, atol=1e-5)
    clips = [keypoints(1, seed=s) for s in range(12)]            # concurrent: batched by the server
    answers = [None] * len(clips)

    def send(i):
        answers[i] = infer(grpc, server.grpc, clips[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(clips))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for clip, answer in zip(clips, answers):
        np.testing.assert_allclose(answer, engine.infer(clip), atol=1e-5)
    assert sum(size * count for size, count in batches_since(server.grpc, server.name, {}, 15).items()) >= 15


@needs_pytriton
def test_bad_requests_get_errors_that_name_the_problem_and_the_server_stays_up(server, engine):
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    values = keypoints(2, seed=1)
    cases = [(values[:, :26].copy(), "FP32", r"unexpected shape for input 'keypoints_2d'.*Expected \[-1,27,17,3\]"),
             (values.astype(np.float64), "FP64", "data-type is 'FP64', but model 'kasportsformer' expects 'FP32'"),
             (np.concatenate([values[:1], np.full((1, 27, 17, 3), np.inf, np.float32)]), "FP32",
              "keypoints_2d holds inf at clip 1, frame 0, joint 0, channel x"),
             (np.where(np.arange(3) == 1, np.nan, values).astype(np.float32), "FP32",
              "keypoints_2d holds nan at clip 0, frame 0, joint 0, channel y")]
    for bad, dtype, message in cases:
        with pytest.raises(InferenceServerException, match=message):
            infer(http, server.http, bad, dtype)
    np.testing.assert_allclose(infer(http, server.http, values), engine.infer(values), atol=1e-5)
    assert server.process.poll() is None


@needs_pytriton
def test_streaming_model_keeps_each_tracks_window(server, engine):
    import tritonclient.grpc as grpc

    client = grpc.InferenceServerClient(server.grpc)
    tracks = {11: keypoints(1, seed=2)[0], 12: keypoints(1, seed=3)[0]}
    local = StreamRuntime(engine, mode="causal", normalized=True)
    got: dict = {track: [] for track in tracks}
    expected: dict = {track: [] for track in tracks}
    for frame in range(27):
        last = frame == 26
        for track, values in tracks.items():
            inputs = []
            for name, array, dtype in (("track_id", np.array([[track]], np.int64), "INT64"),
                                       ("keypoints_2d", values[frame][None], "FP32"),
                                       ("end", np.array([[last]]), "BOOL")):
                inputs.append(grpc.InferInput(name, list(array.shape), dtype))
                inputs[-1].set_data_from_numpy(array)
            answer = client.infer("kasportsformer_stream", inputs)
            got[track] += list(zip(answer.as_numpy("track_frames")[0], answer.as_numpy("poses_3d")[0]))
        results = local.process({track: values[frame] for track, values in tracks.items()})
        for result in results + (local.close_all() if last else []):
            expected[result.track_id].append((result.track_frame, result.pose))
    for track in tracks:
        assert [f for f, _ in got[track]] == [f for f, _ in expected[track]] == list(range(27))
        np.testing.assert_allclose(np.stack([p for _, p in got[track]]), np.stack([p for _, p in expected[track]]),
                                   atol=1e-5)


@needs_pytriton
def test_load_from_concurrent_clients_fails_nothing_and_batches_on_the_server(server, engine):
    clips = keypoints(8, seed=4)
    expected = np.concatenate([engine.infer(clips[i:i + 1]) for i in range(len(clips))])
    for clients in (1, 6):
        level = run_level(server.grpc, server.name, clips, expected, clients, requests=36, seconds=60)
        assert (level.sent, level.failed, level.mismatched) == (36, 0, 0), level.errors
        assert sum(size * count for size, count in level.batches.items()) == 36
    assert max(level.batches) > 1, level.batches        # six clients at once: batched together


@needs_pytriton
def test_a_killed_instance_stops_the_server_with_the_reason(tiny_onnx):
    with ServerProcess(tiny_onnx, ["--threads", "1", "--no-stream"], name="kasf_kill_test") as server:
        assert kill_instance("kasf_kill_test")
        assert server.process.wait(60) == 1
    assert "the stub process of model instance kasf_kill_test_0_0 died" in server.output


def test_stream_requests_are_cut_into_frames_with_each_track_once():
    frames = [StreamFrame(track, np.zeros((17, 3)), False) for track in (1, 2, 1, 3, 3)]
    assert in_order(frames) == [[0, 1], [2, 3], [4]]


@needs_pytriton
def test_sigterm_stops_the_server_cleanly(server):
    import tritonclient.http as http

    assert server.stop() == 0, server.output
    assert any(line.strip() == "stopped" for line in server.lines)
    with pytest.raises(Exception):
        http.InferenceServerClient(server.http).is_server_live()
    assert subprocess.run(["pgrep", "-f", f"tritonserver.*--http-port={server.http_port}"]).returncode == 1
