"""The TensorRT backend's handling of what TensorRT and CUDA answer, without TensorRT or a GPU: fake
builder configs, execution contexts, inspectors, streams and graphs with the real API's method
names and return conventions (bools and None, not exceptions), the inspector's JSON in TensorRT
10's and 11's schemas, ONNX Runtime's TensorRT provider options, and CMake's TensorRT version floor."""

import importlib
import json
import re
import shutil
import subprocess
import warnings
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from kasf.engines.onnxruntime import OnnxRuntimeEngine, tensorrt_precision_options
from kasf.engines.tensorrt import TensorRTEngine, build, precision_report, read_sidecar, runner, tensor_precision
from kasf.engines.torch import TorchEngine
from kasf.errors import KasfError

torch_backend = importlib.import_module("kasf.engines.torch")   # kasf.engines.torch is the torch package
ROOT = Path(__file__).resolve().parents[2]
PROFILE = ([1, 27, 17, 3], [8, 27, 17, 3], [16, 27, 17, 3])


# ---------------------------------------------------------------------------------------------- fakes

@pytest.fixture
def cuda(monkeypatch):
    """torch.cuda's current device and stream, as a fake that records them; graphs and events that
    note the stream current when they launch (torch replays a graph on the current stream)."""
    state = SimpleNamespace(stream="torch's current stream", device="cuda:0", capturing=False, replays=[],
                            events=[], graphs=[])

    @contextmanager
    def swap(name, value):
        previous = getattr(state, name)
        setattr(state, name, value)
        try:
            yield
        finally:
            setattr(state, name, previous)

    class Graph:
        def __init__(self):
            self.ended, self.failed = False, False
            state.graphs.append(self)

        def capture_begin(self, capture_error_mode="global"):
            state.capturing, self.mode = True, capture_error_mode

        def capture_end(self):
            state.capturing, self.ended = False, True
            if self.failed:
                raise RuntimeError("CUDA error: operation failed due to a previous error during capture")

        def replay(self):
            state.replays.append((state.device, state.stream))

    class graph:
        """torch.cuda.graph as torch writes it: capture_end in __exit__, then the stream's exit."""

        def __init__(self, cuda_graph, stream=None, capture_error_mode="global"):
            self.cuda_graph, self.stream_ctx, self.mode = cuda_graph, swap("stream", stream), capture_error_mode

        def __enter__(self):
            self.stream_ctx.__enter__()
            self.cuda_graph.capture_begin(capture_error_mode=self.mode)

        def __exit__(self, *exc):
            self.cuda_graph.capture_end()
            self.stream_ctx.__exit__(*exc)

    def events(work, stream=None):
        state.events.append((state.device, state.stream if stream is None else stream))
        work()
        return 1e-3

    monkeypatch.setattr(torch.cuda, "stream", lambda stream: swap("stream", stream))
    monkeypatch.setattr(torch.cuda, "device", lambda device: swap("device", str(device)))
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", graph)
    monkeypatch.setattr(runner, "cuda_event_seconds", events)
    monkeypatch.setattr(torch_backend, "cuda_event_seconds", events)
    return state


class Stream:
    cuda_stream = 7

    def synchronize(self):
        pass

    def __repr__(self):
        return "the engine's stream"


class Context:
    """IExecutionContext: set_input_shape and set_tensor_address answer with a bool, the output
    shape is what TensorRT infers (-1 where it cannot), execute_async_v3 answers with a bool."""

    def __init__(self, cuda, output=lambda batch: (batch, 27, 17, 3), fails_in_capture=False, highest=16):
        self.cuda, self.output, self.fails_in_capture, self.highest = cuda, output, fails_in_capture, highest
        self.batch, self.runs, self.addresses = None, 0, {}

    def set_input_shape(self, name, shape):
        self.batch = shape[0]
        return shape[0] <= self.highest

    def get_tensor_shape(self, name):
        return self.output(self.batch)

    def set_tensor_address(self, name, address):
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle):
        if self.cuda.capturing and self.fails_in_capture:
            self.cuda.graphs[-1].failed = True
            return False
        self.runs += 1
        return True


class Buffer:
    def data_ptr(self):
        return 1234


def tensorrt_engine(cuda, context=None, capture_context=None) -> TensorRTEngine:
    """A TensorRTEngine as __init__ leaves one, around fake TensorRT objects."""
    engine = object.__new__(TensorRTEngine)
    fake_engine = SimpleNamespace(get_tensor_profile_shape=lambda name, profile: PROFILE,
                                  create_execution_context=lambda: capture_context or Context(cuda))
    engine.__dict__.update(
        path=Path("m.engine"), stream=Stream(), device="cuda:1", cuda_graphs=True, _graphs={}, n_frames=27,
        input_name="keypoints_2d", output_name="poses_3d", engine=fake_engine, context=context or Context(cuda),
        _context_batch=0, _device_input=Buffer(), _device_output=Buffer(), min_batch=1, max_batch=16)
    return engine


# ---------------------------------------------------------------------------------------------- 1: streams

def test_graph_replay_is_timed_on_the_engine_stream(cuda):
    engine = tensorrt_engine(cuda)
    timer = engine.compute_timer(4)                             # captures the graph
    assert timer() == 1e-3
    assert cuda.replays == [("cuda:1", engine.stream)]           # launched on the stream the events are on
    assert cuda.events == [("cuda:1", engine.stream)]
    assert cuda.stream == "torch's current stream"               # and the caller's stream is back


def test_torch_engine_times_on_its_own_device(cuda):
    engine = object.__new__(TorchEngine)
    graph = torch.cuda.CUDAGraph()
    engine.__dict__.update(device=torch.device("cuda", 1), cuda_graphs=True, _graphs={2: (graph, None, None)})
    engine.compute_timer(2)()
    assert cuda.events == [("cuda:1", "torch's current stream")]
    assert cuda.replays == [("cuda:1", "torch's current stream")]  # the events' device's stream


# ---------------------------------------------------------------------------------------------- 4: capture

def test_failed_capture_ends_it_and_falls_back_to_enqueue(cuda):
    shared = Context(cuda)
    engine = tensorrt_engine(cuda, context=shared, capture_context=Context(cuda, fails_in_capture=True))
    with pytest.warns(UserWarning, match=r"CUDA graphs are off for m\.engine: capturing its enqueue for batch 2 "
                                         r"failed \(TensorRT failed to run m\.engine .*previous error during capture"):
        with torch.cuda.device(engine.device), torch.cuda.stream(engine.stream):   # as _infer runs it
            engine._runner(2)()
    (graph,) = cuda.graphs
    assert graph.ended and graph.mode == "thread_local" and not cuda.capturing
    assert not engine.cuda_graphs and engine._graphs == {}
    assert shared.runs == 1 and shared.batch == 2                 # the plain enqueue ran
    assert cuda.stream == "torch's current stream"
    with torch.cuda.stream(engine.stream):                        # no second capture, no second warning
        engine._runner(2)()
    assert len(cuda.graphs) == 1 and shared.runs == 2


def test_capture_reports_the_first_failure_and_still_ends_the_capture(cuda):
    graph = torch.cuda.CUDAGraph()

    def refused():
        raise KasfError("TensorRT failed to run m.engine")
    with pytest.raises(KasfError, match="^TensorRT failed to run m.engine$"):
        runner.capture(graph, Stream(), refused)
    assert graph.ended and not cuda.capturing
    runner.capture(graph, Stream(), lambda: None)


# ---------------------------------------------------------------------------------------------- 3, 5: shapes

def test_a_refused_input_shape_names_the_tensor_and_the_profile(cuda):
    engine = tensorrt_engine(cuda)
    with pytest.raises(KasfError, match=r"refused the input shape \[20, 27, 17, 3\] of 'keypoints_2d' for m\.engine: "
                                        r"its optimisation profile takes \[1, 27, 17, 3\] to \[16, 27, 17, 3\]"):
        engine._bind(engine.context, 20)


@pytest.mark.parametrize("output, message", [
    (lambda b: (b, 27, 17, -1), r"\[3, 27, 17, -1\] .*unresolved \(-1\)"),
    (lambda b: (b, 27, 51), r"\[3, 27, 51\] .*rank 3, not 4"),
    (lambda b: (2 * b, 27, 17, 3), r"\[6, 27, 17, 3\] .*other sizes"),
])
def test_an_output_shape_other_than_the_buffer_is_refused(cuda, output, message):
    engine = tensorrt_engine(cuda, context=Context(cuda, output=output))
    with pytest.raises(KasfError, match=r"m\.engine would give 'poses_3d' the shape " + message):
        engine._bind(engine.context, 3)
    assert engine.context.addresses == {}                         # no address given to a wrong shape


def test_the_expected_output_shape_binds(cuda):
    engine = tensorrt_engine(cuda)
    engine._bind(engine.context, 3)
    assert set(engine.context.addresses) == {"keypoints_2d", "poses_3d"}


class Inspector:
    """IEngineInspector: execution_context is a property, so its setter's bool never reaches Python."""

    def __init__(self, accepts):
        self.accepts, self._context = accepts, None

    @property
    def execution_context(self):
        return self._context

    @execution_context.setter
    def execution_context(self, context):
        if self.accepts:
            self._context = context

    def get_engine_information(self, format):
        return json.dumps({"Layers": []})


def fake_runtime_trt(context, inspector):
    engine = SimpleNamespace(create_execution_context=lambda: context, create_engine_inspector=lambda: inspector,
                             get_tensor_profile_shape=lambda name, profile: PROFILE)
    return SimpleNamespace(Runtime=lambda logger: SimpleNamespace(deserialize_cuda_engine=lambda plan: engine),
                           LayerInformationFormat=SimpleNamespace(JSON=1))


def test_inspection_checks_the_shape_and_the_inspector(cuda):
    ok = fake_runtime_trt(Context(cuda), Inspector(accepts=True))
    assert build._engine_information(ok, None, b"plan", "keypoints_2d", [8, 27, 17, 3]) == {"Layers": []}
    too_big = fake_runtime_trt(Context(cuda, highest=4), Inspector(accepts=True))
    with pytest.raises(KasfError, match=r"refused the input shape \[8, 27, 17, 3\] of 'keypoints_2d' for the plan "
                                        r"just built: .*\[1, 27, 17, 3\] to \[16, 27, 17, 3\]"):
        build._engine_information(too_big, None, b"plan", "keypoints_2d", [8, 27, 17, 3])
    refusing = fake_runtime_trt(Context(cuda), Inspector(accepts=False))
    with pytest.raises(KasfError, match="engine inspector refused the execution context"):
        build._engine_information(refusing, None, b"plan", "keypoints_2d", [8, 27, 17, 3])


# ---------------------------------------------------------------------------------------------- 2: timing cache

class Cache:
    def __init__(self, gpu):
        self.gpu = gpu

    def serialize(self):
        return memoryview(f"timing cache of {self.gpu}".encode())


class Config:
    """IBuilderConfig's timing-cache calls: create_timing_cache returns None for a blob it cannot
    read, set_timing_cache False for a cache of other device properties."""

    def __init__(self, gpu="H100", readable=True):
        self.gpu, self.readable, self.attached = gpu, readable, None

    def create_timing_cache(self, blob):
        if not self.readable:
            return None
        text = bytes(blob).decode()
        return Cache(text.removeprefix("timing cache of ") if text else self.gpu)

    def set_timing_cache(self, cache, ignore_mismatch):
        if cache.gpu != self.gpu and not ignore_mismatch:
            return False
        self.attached = cache
        return True

    def get_timing_cache(self):
        return self.attached

    def __getattr__(self, name):      # set_memory_pool_limit, clear_flag, ...: accepted
        return lambda *args, **kwargs: None


def fake_builder_trt(config):
    network = object()
    builder = SimpleNamespace(create_network=lambda flags: network, create_builder_config=lambda: config,
                              create_optimization_profile=lambda: SimpleNamespace(set_shape=lambda *a: None),
                              build_serialized_network=lambda net, cfg: memoryview(b"plan"))
    return SimpleNamespace(
        __version__="10.13.0.35", Builder=lambda logger: builder,
        OnnxParser=lambda net, logger: SimpleNamespace(parse_from_file=lambda path: True, num_errors=0),
        NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1), MemoryPoolType=SimpleNamespace(WORKSPACE=0),
        ProfilingVerbosity=SimpleNamespace(DETAILED=2), BuilderFlag=SimpleNamespace(TF32=7))


def build_plan(config, cache: Path) -> bytes:
    settings = build.BuildSettings(1, 8, 16, timing_cache=cache)
    return build._build_plan(fake_builder_trt(config), None, Path("m.onnx"), "keypoints_2d",
                             settings.profile_shapes(27), settings, None)


def test_a_cache_from_another_gpu_is_replaced_with_a_warning(tmp_path):
    cache = tmp_path / "trt.cache"
    cache.write_bytes(b"timing cache of A100")
    with pytest.warns(UserWarning, match=r"refused the timing cache .*trt\.cache: it was recorded on a GPU with "
                                         "other device properties; building with a fresh cache"):
        assert build_plan(Config("H100"), cache) == b"plan"
    assert cache.read_bytes() == b"timing cache of H100"


def test_a_matching_or_absent_cache_is_used_and_written_quietly(tmp_path):
    cache = tmp_path / "trt.cache"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_plan(Config("H100"), cache)                     # none yet: a new one
        assert cache.read_bytes() == b"timing cache of H100"
        build_plan(Config("H100"), cache)
    assert cache.read_bytes() == b"timing cache of H100"


def test_an_unreadable_cache_is_a_clear_error(tmp_path):
    cache = tmp_path / "trt.cache"
    cache.write_bytes(b"\x00garbage")
    with pytest.raises(KasfError, match=r"cannot read the timing cache .*trt\.cache .*delete it, or name another"):
        build_plan(Config(readable=False), cache)
    assert cache.read_bytes() == b"\x00garbage"
    with pytest.raises(KasfError, match="could not create a new timing cache"):
        build_plan(Config(readable=False), tmp_path / "new.cache")


# ---------------------------------------------------------------------------------------------- 8: layer JSON

TENSORRT_10 = {"Layers": [
    {"Name": "qkv", "LayerType": "gemm", "Outputs": [{"Name": "a", "Format/Datatype": "Row major linear FP16 format"}]},
    {"Name": "mha", "LayerType": "gemm", "TacticName": "_gemm_mha_v2", "Outputs": [{"Format/Datatype": "Half"}]},
    {"Name": "norm", "LayerType": "kgen", "Outputs": [{"Format/Datatype": "Float"}]},
], "Bindings": ["keypoints_2d", "poses_3d"]}
TENSORRT_11 = {"Layers": [
    {"Name": "qkv", "LayerType": "gemm", "Outputs": [{"Name": "a", "Format": "Row major linear FP16 format (kLINEAR)",
                                                      "DataType": "Half"}]},
    {"Name": "mha", "LayerType": "gemm", "TacticName": "_gemm_mha_v2",
     "Outputs": [{"Format": "Row major linear FP16 format (kLINEAR)"}]},
    {"Name": "norm", "LayerType": "kgen", "Outputs": [{"Format": "kLINEAR", "Datatype": "Float"}]},
], "I/O Tensors": [{"Name": "keypoints_2d", "IOMode": "Input", "DataType": "Float"},
                   {"Name": "poses_3d", "IOMode": "Output", "DataType": "Float"}]}


@pytest.mark.parametrize("information", [TENSORRT_10, TENSORRT_11], ids=["tensorrt10", "tensorrt11"])
def test_both_inspector_schemas_read_alike(information):
    report = precision_report(information)
    assert report["detailed"] and report["layers_by_precision"] == {"fp16": 2, "fp32": 1}
    assert report["fp16_share"] == 2 / 3 and report["fused_attention_layers"] == ["mha"]
    assert report["io_tensors"] == ["keypoints_2d", "poses_3d"] and report["unknown_layers"] == 0


def test_the_data_type_outranks_the_format_text():
    assert tensor_precision({"DataType": "Half", "Format": "Row major linear FP32 format (kLINEAR)"}) == "fp16"
    assert tensor_precision({"Datatype": "Int8", "Format": "kLINEAR"}) == "int8"
    assert tensor_precision({"Location": "Device"}) == "unknown"


@pytest.mark.parametrize("information, reason", [
    ({"Layers": [{"Name": "qkv", "LayerType": "gemm", "Outputs": [{"Name": "a", "Precision": "Half"}]},
                 {"Name": "norm", "LayerType": "kgen", "Outputs": [{"Name": "b", "Precision": "Float"}]}]},
     r"2 of 2 computing layers name no type kasf reads .*their outputs have Name, Precision"),
    ({"LayerInfo": [{"Name": "qkv"}], "I/O Tensors": []}, r"no list of layers \(it has LayerInfo, I/O Tensors\)"),
    ({"Layers": ["qkv", "softmax"]}, "layer names only"),
    ({"Layers": [{"Name": "qkv", "LayerType": "gemm", "Outputs": [{"Name": "a", "DataType": "E9M9"}]},
                 {"Name": "norm", "LayerType": "kgen", "Outputs": [{"Name": "b", "DataType": "Float"}]}]},
     "1 of 2 computing layers .* none of those is FP16: the engine may be FP16 or FP32"),
])
def test_an_unreadable_schema_is_unknown_never_fp32(information, reason):
    report = precision_report(information)
    assert report["precision"] == "unknown" and not report["detailed"] and "fp16_share" not in report
    assert report["note"] == f"precision unknown: {report['reason']}"
    assert re.search(reason, report["reason"]), report["reason"]


def test_build_claims_no_precision_it_could_not_read(tiny_exports, tmp_path, monkeypatch):
    class Logger:
        WARNING = 2

        def __init__(self, severity):
            pass
    trt = SimpleNamespace(__version__="11.1.0.106", NetworkDefinitionCreationFlag=SimpleNamespace(), Logger=Logger)
    unreadable = {"Layers": [{"Name": "qkv", "LayerType": "gemm", "Outputs": [{"Name": "a", "Precision": "Half"}]}]}
    monkeypatch.setattr(build, "import_tensorrt", lambda: trt)
    monkeypatch.setattr(build, "require_cuda", lambda what: None)
    monkeypatch.setattr(build, "_build_plan", lambda *args: b"plan")
    monkeypatch.setattr(build, "_engine_information", lambda *args: unreadable)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H100")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (9, 0))
    with pytest.warns(UserWarning, match=r"cannot tell which precision .*m\.engine runs \(1 of 1 computing layers"):
        built = build.build_engine(tiny_exports["fp16"].path, tmp_path / "m.engine")
    report = read_sidecar(built.path)["precision_report"]
    assert report["precision"] == "unknown" and read_sidecar(built.path)["precision"] == "fp16"


# ---------------------------------------------------------------------------------------------- 7: ONNX Runtime

def test_onnxruntime_tensorrt_precision_options():
    assert tensorrt_precision_options("fp32", "1.31.1") == {"trt_fp16_enable": False, "trt_int8_enable": False}
    assert tensorrt_precision_options("int8", "1.20.0") == {"trt_fp16_enable": False, "trt_int8_enable": True}
    with pytest.raises(KasfError, match=r"ONNX Runtime 1\.31\.1's TensorRT provider has no strongly typed mode: .*"
                                        r"FP32 islands .*`kasf build`"):
        tensorrt_precision_options("fp16", "1.31.1")
    with pytest.raises(KasfError, match=r"1\.33\.0's TensorRT provider has no strongly typed mode kasf knows "
                                        r"\(none up to onnxruntime-gpu 1\.31\.1 has one\)"):
        tensorrt_precision_options("fp16", "1.33.0")
    with pytest.raises(KasfError, match="runs kasf's fp32 and int8 graphs, not 'bf16'"):
        tensorrt_precision_options("bf16", "1.31.1")


def test_the_fp16_graph_gets_no_weak_fp16_flag(tmp_path):
    engine = object.__new__(OnnxRuntimeEngine)
    engine.__dict__.update(precision="fp16", n_frames=27, trt_batch_profile=(1, 8, 64))
    with pytest.raises(KasfError, match="no strongly typed mode"):
        engine._provider_options("TensorrtExecutionProvider", 0, tmp_path)
    engine.precision = "fp32"
    options = engine._provider_options("TensorrtExecutionProvider", 0, tmp_path)
    assert not options["trt_fp16_enable"] and options["trt_profile_max_shapes"] == "keypoints_2d:64x27x17x3"


# ---------------------------------------------------------------------------------------------- 6: CMake

# NvInferVersion.h as NVIDIA wrote it: numbers in NV_TENSORRT_* up to 10.10, in TRT_*_ENTERPRISE from 10.11 on.
VERSION_HEADERS = {
    "8.6.1.5": "#define NV_TENSORRT_MAJOR 8\n#define NV_TENSORRT_MINOR 6\n#define NV_TENSORRT_PATCH 1\n"
               "#define NV_TENSORRT_BUILD 5\n#define NV_TENSORRT_SONAME_MAJOR 8\n",
    "10.8.0.43": "#define NV_TENSORRT_MAJOR 10 //!< TensorRT major version.\n#define NV_TENSORRT_MINOR 8\n"
                 "#define NV_TENSORRT_PATCH 0\n#define NV_TENSORRT_BUILD 43\n#define NV_TENSORRT_LWS_MAJOR 0\n",
    "11.1.0.106": "#define TRT_MAJOR_ENTERPRISE 11\n#define TRT_MINOR_ENTERPRISE 1\n#define TRT_PATCH_ENTERPRISE 0\n"
                  "#define TRT_BUILD_ENTERPRISE 106\n#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE\n"
                  "#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE\n#define NV_TENSORRT_LWS_MAJOR 0\n",
}


def configure(tmp_path: Path, version: str) -> str:
    """cmake configure (no build) of the runtime with a fake TensorRT tree, the other backends off."""
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        pytest.skip("needs cmake and a C++ compiler")
    prefix = tmp_path / "tensorrt"
    (prefix / "include").mkdir(parents=True)
    (prefix / "lib").mkdir()
    (prefix / "include" / "NvInfer.h").write_text("")
    (prefix / "include" / "NvInferVersion.h").write_text(VERSION_HEADERS[version])
    (prefix / "lib" / "libnvinfer.so").write_bytes(b"")
    done = subprocess.run(["cmake", "-S", str(ROOT), "-B", str(tmp_path / "build"), "-DKASF_WITH_AOTI=OFF",
                           "-DKASF_WITH_ONNXRUNTIME=OFF", "-DBUILD_TESTING=OFF", f"-DTENSORRT_ROOT={prefix}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_cmake_skips_tensorrt_older_than_10(tmp_path):
    output = configure(tmp_path, "8.6.1.5")
    assert "kasf: TensorRT backend skipped: TensorRT 8.6.1.5 in" in output and "is older than 10" in output
    assert "kasf runtime backends: tensorrt" not in output


@pytest.mark.parametrize("version", ["10.8.0.43", "11.1.0.106"])
def test_cmake_finds_tensorrt_10_and_11(tmp_path, version):
    output = configure(tmp_path, version)
    assert f"kasf: TensorRT {version} found" in output and "older than" not in output
