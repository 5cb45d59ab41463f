import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kasf.engines import load_engine
from kasf.engines.onnxruntime import OnnxRuntimeEngine
from kasf.engines.torch import TorchEngine
from kasf.errors import InputError, KasfError
from kasf.model.normalization import normalize_screen
from kasf.stream.runtime import StreamRuntime, track_phase

from conftest import AUTHORS_CHECKPOINT, AUTHORS_YAML

T, CENTRE = 27, 13


# One thread per engine: the tiny model's calls are too small to share out, and on a busy machine
# threads that wait for each other make the streaming tests' many small calls slow.
@pytest.fixture(scope="module")
def torch_engine():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield TorchEngine(AUTHORS_CHECKPOINT, AUTHORS_YAML)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def onnx_engine(tiny_onnx):
    return load_engine(tiny_onnx, threads=1)


@pytest.fixture(params=["torch", "onnxruntime"])
def engine(request):
    return request.getfixturevalue(f"{'torch' if request.param == 'torch' else 'onnx'}_engine")


def sequence(frames: int, seed: int) -> np.ndarray:
    """A person's normalised keypoints [frames, 17, 3], confidences in (0.1, 1]."""
    rng = np.random.default_rng(seed)
    keypoints = rng.uniform(-1, 1, size=(frames, 17, 3)).astype(np.float32)
    keypoints[..., 2] = rng.uniform(0.1, 1.0, size=(frames, 17))
    return keypoints


def padded(seq: np.ndarray, start: int, stop: int) -> np.ndarray:
    """seq[start:stop], with the first frame repeated before 0 and the last after the end."""
    before = np.repeat(seq[:1], max(0, -start), axis=0)
    after = np.repeat(seq[-1:], max(0, stop - len(seq)), axis=0)
    return np.concatenate([before, seq[max(0, start):min(len(seq), stop)], after])


def test_causal_mode_lifts_the_newest_frame_of_each_window(engine):
    seq = sequence(30, seed=0)
    runtime = StreamRuntime(engine, mode="causal", normalized=True)
    results = [runtime.process({"a": frame}) for frame in seq]
    assert all(len(r) == 1 for r in results)
    windows = np.stack([padded(seq, j - T + 1, j + 1) for j in range(len(seq))])
    expected = engine.infer(windows)[:, -1]
    np.testing.assert_allclose(np.stack([r[0].pose for r in results]), expected, atol=1e-5)
    assert [r[0].frame for r in results] == list(range(30)) == [r[0].track_frame for r in results]
    assert runtime.close("a") == []


def test_centred_mode_lifts_the_middle_frame_13_frames_late_and_flushes_on_close(engine):
    seq = sequence(20, seed=1)
    runtime = StreamRuntime(engine, mode="centred", normalized=True)
    results = []
    for j, frame in enumerate(seq):
        ready = runtime.process({7: frame})
        assert [r.track_frame for r in ready] == ([j - CENTRE] if j >= CENTRE else [])
        results += ready
    flushed = runtime.close(7)
    assert [r.track_frame for r in flushed] == list(range(len(seq) - CENTRE, len(seq)))
    results += flushed
    windows = np.stack([padded(seq, k - CENTRE, k + CENTRE + 1) for k in range(len(seq))])
    expected = engine.infer(windows)[:, CENTRE]
    np.testing.assert_allclose(np.stack([r.pose for r in results]), expected, atol=1e-5)
    assert runtime.tracks == []


def test_a_track_shorter_than_the_delay_is_all_flushed_at_close(torch_engine):
    seq = sequence(4, seed=2)
    runtime = StreamRuntime(torch_engine, mode="centred", normalized=True)
    assert all(runtime.process({"x": frame}) == [] for frame in seq)
    flushed = runtime.close("x")
    expected = torch_engine.infer(np.stack([padded(seq, k - CENTRE, k + CENTRE + 1) for k in range(4)]))[:, CENTRE]
    np.testing.assert_allclose(np.stack([r.pose for r in flushed]), expected, atol=1e-5)


@pytest.mark.parametrize("lag, stride", [(0, 1), (CENTRE, 1), (4, 7), (0, 27)])
def test_a_persons_poses_do_not_depend_on_the_other_people_in_the_call(engine, lag, stride):
    people = {name: sequence(16, seed=10 + i) for i, name in enumerate("abcd")}
    alone = StreamRuntime(engine, lag=lag, stride=stride, normalized=True)
    crowd = StreamRuntime(engine, lag=lag, stride=stride, normalized=True)
    poses_alone, poses_crowd = [], []
    for j in range(16):
        poses_alone += alone.process({"a": people["a"][j]})
        frame = {name: seq[j] for name, seq in people.items() if name == "a" or j % 3 != 0}  # others come and go
        poses_crowd += [r for r in crowd.process(frame) if r.track_id == "a"]
    poses_alone += alone.close("a")
    poses_crowd += [r for r in crowd.close_all() if r.track_id == "a"]
    assert [r.track_frame for r in poses_alone] == [r.track_frame for r in poses_crowd] == list(range(16))
    np.testing.assert_allclose(np.stack([r.pose for r in poses_crowd]), np.stack([r.pose for r in poses_alone]),
                               atol=1e-5)


def test_pixels_are_normalised_with_the_image_size(torch_engine):
    pixels = np.random.default_rng(3).uniform(0, 1000, size=(3, 17, 3)).astype(np.float32)
    pixels[..., 2] = 0.9
    in_pixels = StreamRuntime(torch_engine, image_size=(1920, 1080))
    normalised = StreamRuntime(torch_engine, normalized=True)
    for frame, norm in zip(pixels, normalize_screen(pixels, 1920, 1080)):
        np.testing.assert_allclose(in_pixels.process({0: frame})[0].pose, normalised.process({0: norm})[0].pose,
                                   atol=1e-6)


def test_missing_joints_keep_confidence_0_at_their_last_seen_place_or_the_frames_root(torch_engine):
    seq = sequence(4, seed=4)
    observed, filled = seq.copy(), seq.copy()
    # joint 5 seen in frames 0-1, then missing with NaN coordinates: it stays where it was last seen
    observed[2:, 5] = [np.nan, np.nan, 0.0]
    filled[2:, 5] = np.concatenate([np.repeat(seq[1:2, 5, :2], 2, axis=0), np.zeros((2, 1))], axis=1)
    # joint 9 never seen: the frame's root; in frame 3 the root is missing too: the mean of the seen joints
    observed[:, 9, 2] = 0.0
    observed[3, 0, 2] = 0.0
    filled[:, 9] = np.concatenate([seq[:, 0, :2], np.zeros((4, 1))], axis=1)
    filled[3, 0, 2] = 0.0
    seen = observed[3, :, 2] > 0
    filled[3, 9, :2] = observed[3, seen, :2].mean(axis=0)
    filled[3, 0, :2] = seq[2, 0, :2]                              # the root itself: its last seen place
    runtime = StreamRuntime(torch_engine, normalized=True)
    poses = np.stack([runtime.process({0: frame})[0].pose for frame in observed])
    expected = torch_engine.infer(np.stack([padded(filled, j - T + 1, j + 1) for j in range(4)]))[:, -1]
    np.testing.assert_allclose(poses, expected, atol=1e-5)


def test_a_person_never_seen_at_all_sits_at_the_screen_centre(torch_engine):
    blank = np.zeros((17, 3), np.float32)
    blank[:, :2] = np.nan
    result = StreamRuntime(torch_engine, normalized=True).process({0: blank})
    assert np.isfinite(result[0].pose).all()


def frame_with(change) -> np.ndarray:
    keypoints = sequence(1, seed=5)[0]
    return change(keypoints)


def set_value(joint: int, channel: int, value: float):
    def change(keypoints):
        keypoints[joint, channel] = value
        return keypoints
    return change


BAD_FRAMES = {
    "16 joints": (lambda k: k[:16], "shape [17, 3]"),
    "2 channels": (lambda k: k[:, :2], "shape [17, 3]"),
    "a batch": (lambda k: k[None], "shape [17, 3]"),
    "text": (lambda k: k.astype(str), "real numbers"),
    "NaN seen joint": (set_value(3, 0, np.nan), "joint 3 (right_ankle) has NaN coordinates but confidence above 0"),
    "Inf": (set_value(4, 1, np.inf), "joint 4 (left_hip) has an infinite coordinate"),
    "Inf unseen joint": (lambda k: set_value(4, 2, 0.0)(set_value(4, 1, -np.inf)(k)), "infinite coordinate"),
    "negative confidence": (set_value(6, 2, -0.1), "joint 6 (left_ankle) has a confidence outside [0, 1]"),
    "confidence above 1": (set_value(7, 2, 1.5), "joint 7 (spine) has a confidence outside [0, 1]"),
    "NaN confidence": (set_value(8, 2, np.nan), "joint 8 (thorax) has a NaN confidence"),
}


@pytest.mark.parametrize("case", BAD_FRAMES)
def test_a_bad_frame_is_an_input_error_naming_the_track_and_the_problem(torch_engine, case):
    change, problem = BAD_FRAMES[case]
    runtime = StreamRuntime(torch_engine, normalized=True)
    runtime.process({"good": sequence(1, seed=6)[0]})
    with pytest.raises(InputError, match="track 'bob' at frame 1") as error:
        runtime.process({"good": sequence(1, seed=7)[0], "bob": frame_with(change)})
    assert problem in str(error.value)
    assert runtime.tracks == ["good"] and runtime.frame == 1      # the frame was refused as a whole


def test_a_closed_track_cannot_be_reopened_or_closed_again(torch_engine):
    runtime = StreamRuntime(torch_engine, normalized=True)
    runtime.process({3: sequence(1, seed=8)[0]})
    runtime.close(3)
    with pytest.raises(InputError, match="track 3 at frame 1: the track was closed at frame 1; .* new track id"):
        runtime.process({3: sequence(1, seed=8)[0]})
    with pytest.raises(KasfError, match="cannot close track 3: it was already closed"):
        runtime.close(3)
    with pytest.raises(KasfError, match="cannot close track 4: it was never opened"):
        runtime.close(4)


def test_close_after_ends_idle_tracks_and_flushes_them_in_the_frames_call(torch_engine):
    seq = sequence(16, seed=9)
    runtime = StreamRuntime(torch_engine, mode="centred", normalized=True, close_after=2)
    for j in range(16):
        runtime.process({"a": seq[j], "b": seq[j]})
    assert [r.track_id for r in runtime.process({"b": seq[0]})] == ["b"]
    results = runtime.process({"b": seq[1]})                       # a's second frame without keypoints
    assert [(r.track_id, r.track_frame) for r in results] == [("a", k) for k in range(3, 16)] + [("b", 4)]
    assert runtime.tracks == ["b"]
    with pytest.raises(InputError, match="track 'a' at frame 18: the track was closed at frame 17"):
        runtime.process({"a": seq[0]})


def test_latency_summary_counts_frames_and_engine_calls(torch_engine):
    runtime = StreamRuntime(torch_engine, mode="centred", normalized=True)
    for frame in sequence(15, seed=10):
        runtime.process({0: frame})
    summary = runtime.latency.summary()
    assert summary["frames"] == 15 and len(runtime.latency.engine) == 2
    assert 0 < summary["engine_p50_ms"] <= summary["total_p99_ms"]
    assert summary["total_p50_ms"] <= summary["total_p90_ms"] <= summary["total_p99_ms"]


@pytest.mark.parametrize("options, message", [
    ({"mode": "lookahead", "normalized": True}, "unknown mode 'lookahead'"),
    ({}, "say what the keypoints are"),
    ({"image_size": (640, 480), "normalized": True}, "not both"),
    ({"image_size": (640, 0)}, "both positive"),
    ({"normalized": True, "close_after": 0}, "close_after must be a positive"),
    ({"normalized": True, "lag": -1}, "lag must be an integer of at least 0, got -1"),
    ({"normalized": True, "stride": 0}, "stride must be an integer of at least 1, got 0"),
    ({"normalized": True, "stride": 2.5}, "stride must be an integer"),
    ({"normalized": True, "lag": 20, "stride": 8}, r"lag 20 \+ stride 8 = 28 is more than the engine's window of 27 "
                                                   r"frames.*lag \+ stride <= 27"),
    ({"normalized": True, "mode": "centred", "stride": 15}, r"lag 13 \+ stride 15 = 28"),
])
def test_runtime_options_are_checked(torch_engine, options, message):
    with pytest.raises(KasfError, match=message):
        StreamRuntime(torch_engine, **options)


TRACK_IDS = st.integers(0, 4)
KEYPOINTS = st.tuples(st.integers(0, 2**16), st.sampled_from(["good", "missing", "bad", "garbage"]))
OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("push"), st.dictionaries(TRACK_IDS, KEYPOINTS, max_size=4)),
    st.tuples(st.just("close"), TRACK_IDS),
    st.tuples(st.just("close_all"), st.none()),
), max_size=12)


def fuzz_keypoints(seed: int, kind: str):
    rng = np.random.default_rng(seed)
    keypoints = sequence(1, seed)[0]
    if kind == "missing":
        hidden = rng.random(17) < 0.5
        keypoints[hidden, 2] = 0.0
        keypoints[hidden & (rng.random(17) < 0.5), :2] = np.nan
    elif kind == "bad":
        keypoints[rng.integers(17), rng.integers(3)] = rng.choice([np.nan, np.inf, -np.inf, 2.0, -1.0])
    elif kind == "garbage":
        return [keypoints[: rng.integers(17)], keypoints[:, :2], rng.random(17), "x", None][rng.integers(5)]
    return keypoints


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS, mode=st.sampled_from(["causal", "centred"]), close_after=st.sampled_from([None, 1, 3]),
       stride=st.sampled_from([1, 1, 3, 14]), lag=st.sampled_from([None, 0, 5, 13]), worker=st.booleans(), blend=st.booleans())
def test_random_pushes_closes_and_closed_tracks_raise_nothing_but_kasf_errors(onnx_engine, operations, mode,
                                                                                close_after, stride, lag, worker, blend):
    returned: dict = {}

    def check(results):
        for result in results:
            assert result.pose.shape == (17, 3) and np.isfinite(result.pose).all()
            # every track's frames come back once each, in order
            assert result.track_frame == returned.get(result.track_id, -1) + 1
            returned[result.track_id] = result.track_frame
        return results

    with StreamRuntime(onnx_engine, mode=mode, normalized=True, close_after=close_after, lag=lag, stride=stride,
                       worker=worker, blend=blend) as runtime:
        for operation, argument in operations:
            try:
                if operation == "push":
                    results = check(runtime.process({track: fuzz_keypoints(*spec) for track, spec in argument.items()}))
                elif operation == "close":
                    check(runtime.close(argument))
                else:
                    check(runtime.close_all())
            except KasfError:
                continue
            if operation == "push" and runtime.lag == 0 and stride == 1 and not worker:
                assert {r.track_id for r in results} == set(argument)
    check(runtime.drain())


def window_end(frame: int, lag: int, stride: int, phase: int) -> int:
    """The newest track frame of the window that returns `frame`: the first window of the track
    (due where newest + 1 - lag + phase is a multiple of stride) at least lag frames past it."""
    newest = frame + lag
    while (newest + 1 - lag + phase) % stride:
        newest += 1
    return newest


@pytest.mark.parametrize("lag, stride", [(0, 1), (CENTRE, 1), (0, 27), (7, 14), (3, 5), (26, 1), (10, 17), (0, 9)])
def test_every_lag_and_stride_returns_the_model_on_the_windows_by_hand(onnx_engine, lag, stride):
    frames = 40
    people = {track: sequence(frames, seed=20 + track) for track in range(3)}
    runtime = StreamRuntime(onnx_engine, lag=lag, stride=stride, normalized=True)
    returned = []
    for j in range(frames):
        returned += [(j, r) for r in runtime.process({track: seq[j] for track, seq in people.items()})]
    returned += [(frames, r) for r in runtime.close_all()]
    for track, seq in people.items():
        mine = [(call, r) for call, r in returned if r.track_id == track]
        assert [r.track_frame for _, r in mine] == list(range(frames))
        ends = [window_end(r.track_frame, lag, stride, track_phase(track, stride)) for _, r in mine]
        assert [call for call, _ in mine] == [min(end, frames) for end in ends]    # past the end: at close
        windows = np.stack([padded(seq, end - T + 1, end + 1) for end in ends])
        positions = [r.track_frame - end + T - 1 for (_, r), end in zip(mine, ends)]
        expected = onnx_engine.infer(windows)[np.arange(frames), positions]
        np.testing.assert_allclose(np.stack([r.pose for _, r in mine]), expected, atol=1e-5)


def test_tracks_are_staggered_over_the_stride(onnx_engine):
    """27 tracks of stride 27 put one window on each frame, not 27 on one."""
    runtime = StreamRuntime(onnx_engine, lag=0, stride=T, normalized=True)
    seq = sequence(2 * T, seed=30)
    per_frame = []
    for j in range(2 * T):
        before = runtime.windows
        runtime.process({track: seq[j] for track in range(T)})
        per_frame.append(runtime.windows - before)
    assert per_frame == [1] * (2 * T)


def test_string_ids_take_a_stable_phase():
    assert track_phase("left wing", 14) == track_phase("left wing", 14) == 0 != track_phase("right wing", 14)


@pytest.mark.parametrize("stride", range(1, T + 1))
def test_consecutive_ids_fill_every_phase_and_land_far_apart(stride):
    phases = [track_phase(i, stride) for i in range(2 * stride)]
    assert sorted(phases[:stride]) == list(range(stride)) and phases[stride:] == phases[:stride]
    for m in range(2, min(stride, 5) + 1):   # the first m tracks sit at least stride / (3 m) from one another
        first = sorted(phases[:m])
        assert min(b - a for a, b in zip(first, first[1:] + [first[0] + stride])) >= stride // (3 * m)
    assert [track_phase(i, 27) for i in range(4)] == [0, 11, 22, 6] and track_phase(-1, 27) == 16


@pytest.mark.parametrize("lag, stride", [(0, 1), (CENTRE, 1), (0, 27), (7, 14), (3, 5)])
def test_a_worker_returns_the_same_poses_as_lifting_in_the_frame_loop_only_later(onnx_engine, lag, stride):
    frames = 40
    people = {track: sequence(frames, seed=40 + track) for track in range(4)}
    returned = {}
    for worker in (False, True):
        with StreamRuntime(onnx_engine, lag=lag, stride=stride, normalized=True, worker=worker) as runtime:
            calls = [runtime.process({track: seq[j] for track, seq in people.items()}) for j in range(frames)]
            calls.append(runtime.close_all())
            assert runtime.backlog == 0
        returned[worker] = {(r.track_id, r.track_frame): (call, r) for call, results in enumerate(calls)
                            for r in results}
    assert returned[True].keys() == returned[False].keys() == {(t, j) for t in people for j in range(frames)}
    for key, (call, result) in returned[False].items():
        later_call, later = returned[True][key]
        assert later_call >= call and later.frame == result.frame
        np.testing.assert_array_equal(later.pose, result.pose)


def test_a_worker_batches_what_queued_while_the_engine_was_busy(onnx_engine):
    with StreamRuntime(onnx_engine, lag=0, stride=1, normalized=True, worker=True) as runtime:
        seq = sequence(T, seed=50)
        for j in range(T):
            runtime.process({track: seq[j] for track in range(8)})
        assert len(runtime.close_all()) == 8 * T
    assert runtime.windows == 8 * T and len(runtime.latency.window) == 8 * T
    assert len(runtime.latency.engine) <= T            # at most one call per frame: often fewer, larger ones


class FailingEngine(OnnxRuntimeEngine):
    """A real ONNX Runtime engine whose third call fails, as a lost device would."""

    calls = 0

    def _infer(self, keypoints):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return super()._infer(keypoints)


def test_an_engine_failure_on_the_worker_is_raised_from_the_next_call(tiny_onnx):
    seq = sequence(10, seed=60)
    with StreamRuntime(FailingEngine(tiny_onnx, threads=1), normalized=True, worker=True) as runtime:
        with pytest.raises(KasfError, match="the engine worker failed and stopped: CUDA error: an illegal memory"):
            for j in range(10):
                runtime.process({0: seq[j]})
                runtime.drain()
        assert j == 2
        with pytest.raises(KasfError, match="the engine worker failed"):
            runtime.process({0: seq[3]})


def test_a_stopped_runtime_refuses_more_windows_but_keeps_its_poses(onnx_engine):
    seq = sequence(3, seed=61)
    runtime = StreamRuntime(onnx_engine, normalized=True, worker=True)
    runtime.process({0: seq[0]})
    runtime.stop()
    assert [r.track_frame for r in runtime.drain()] == [0]
    with pytest.raises(KasfError, match="the runtime was stopped: open a new StreamRuntime"):
        runtime.process({0: seq[1]})


@pytest.mark.parametrize("worker", [False, True])
@pytest.mark.parametrize("lag, stride", [(CENTRE, 1), (CENTRE, 7), (7, 14), (3, 3), (0, 5)])
def test_blending_returns_the_mean_of_every_window_that_held_the_frame(onnx_engine, lag, stride, worker):
    frames, tracks = 30, 2
    people = {track: sequence(frames, seed=70 + track) for track in range(tracks)}
    with StreamRuntime(onnx_engine, lag=lag, stride=stride, normalized=True, blend=True, worker=worker) as runtime:
        returned = [r for j in range(frames) for r in runtime.process({t: seq[j] for t, seq in people.items()})]
        returned += runtime.close_all()
    for track, seq in people.items():
        mine = sorted((r for r in returned if r.track_id == track), key=lambda r: r.track_frame)
        assert [r.track_frame for r in mine] == list(range(frames))
        phase, blended = track_phase(track, stride), 0
        for r in mine:
            last = window_end(r.track_frame, lag, stride, phase)
            ends = [end for end in range(r.track_frame, last + 1) if end >= lag and (end + 1 - lag + phase) % stride == 0]
            windows = np.stack([padded(seq, end - T + 1, end + 1) for end in ends])
            positions = [r.track_frame - end + T - 1 for end in ends]
            expected = onnx_engine.infer(windows)[np.arange(len(ends)), positions].mean(axis=0)
            np.testing.assert_allclose(r.pose, expected, atol=1e-5)
            blended += len(ends) > 1
        assert (blended > 0) == (lag > 0)      # with lag 0 the returning window is the first to hold a frame


def test_the_wrong_shape_error_names_a_converter_that_exists(onnx_engine):
    import importlib
    import re

    runtime = StreamRuntime(onnx_engine, normalized=True)
    with pytest.raises(InputError, match=r"layout with ([\w.]+)\(") as raised:
        runtime.process({0: np.zeros((17, 2), np.float32)})
    module, name = re.search(r"layout with ([\w.]+)\(", str(raised.value)).group(1).rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), name))
