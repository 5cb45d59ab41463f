import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from kasf.model.checkpoint import build_from_checkpoint
from kasf.engines import load_engine
from kasf.errors import InputError, KasfError
from kasf.model.layers import similarity_adjacency
from kasf.verify import BUDGETS_MM, ParityCheck, budget_for, parity_clips
from kasf.verify.floor import NeighbourRecorder, neighbour_flips, rounding_noise, unit_roundoff
from kasf.verify.statistics import deviation_stats, paired_bootstrap

from conftest import AUTHORS_CHECKPOINT, AUTHORS_YAML


@pytest.fixture(scope="module")
def check(authors_checkpoint):
    """The fixture checkpoint (random weights) as the reference on 24 clips spread over the test motions."""
    return ParityCheck(build_from_checkpoint(authors_checkpoint), parity_clips(24), batch_size=8)


# ---------------------------------------------------------------------------------------------- statistics

def test_deviation_stats_in_mm():
    reference = np.zeros((2, 3, 17, 3))
    candidate = reference.copy()
    candidate[1, 2, 5] = [3.0, 4.0, 0.0]          # one joint of one frame of clip 1, 5 mm off
    stats = deviation_stats(reference, candidate)
    assert stats["max_mm"] == 5.0 and stats["mean_mm"] == pytest.approx(5.0 / (2 * 3 * 17))
    assert stats["p50_mm"] == 0.0 and stats["clips_off"] == 1 and stats["per_clip_max_mm"] == [0.0, 5.0]
    assert stats["per_joint_max_mm"]["left_knee"] == 5.0 and stats["per_joint_mm"]["pelvis"] == 0.0


def test_paired_bootstrap_resamples_sequences_within_actions():
    rng = np.random.default_rng(1)
    sequences = np.repeat(np.arange(12), 3)
    actions = np.where(sequences < 6, "run", "jump")
    differences = rng.normal(0.1, 0.05, 12)[sequences] + rng.normal(0, 0.01, len(sequences))
    low, high = paired_bootstrap(differences, sequences, actions)
    assert low < 0.1 < high and (low, high) == paired_bootstrap(differences, sequences, actions)
    # Sequences are the unit: repeating every clip adds no information and leaves the interval as it is.
    assert paired_bootstrap(np.repeat(differences, 4), np.repeat(sequences, 4), np.repeat(actions, 4)) == \
        pytest.approx((low, high))
    assert paired_bootstrap(np.full(6, 0.25), np.arange(6), np.zeros(6)) == pytest.approx((0.25, 0.25))
    with pytest.raises(InputError, match="one of each per clip"):
        paired_bootstrap(np.zeros(3), np.arange(2), np.zeros(3))


def test_budgets_per_precision_and_overrides():
    assert [budget_for(p) for p in ("fp32", "fp16", "bf16", "int8")] == [0.05, 0.1, 0.2, 0.4]
    assert budget_for("fp16", {"fp16": 0.3}) == 0.3 and budget_for("fp32", {"fp16": 0.3}) == BUDGETS_MM["fp32"]
    with pytest.raises(KasfError, match="no task-metric budget for precision 'fp8'"):
        budget_for("fp8")
    with pytest.raises(KasfError, match="at least 0"):
        budget_for("fp32", {"fp32": -1.0})


def test_parity_clips_cover_every_test_motion():
    everything = parity_clips()
    chosen = parity_clips(8)
    assert len(everything) == 256 and len(chosen) == 8
    assert set(chosen.action.tolist()) == set(everything.action.tolist())
    with pytest.raises(KasfError, match="at least one clip"):
        parity_clips(0)


# ---------------------------------------------------------------------------------------------- the floor

def test_neighbour_recorder_sees_the_temporal_gcn_choice(authors_checkpoint, clip):
    model = build_from_checkpoint(authors_checkpoint).eval()
    recorder = NeighbourRecorder(model)
    assert len(recorder.layers) == model.config.n_layers
    with torch.no_grad(), recorder.recording():
        model(clip)
        first = recorder.take()
        model(clip)
        again = recorder.take()
        model(clip + 0.05 * torch.randn(clip.shape, generator=torch.Generator().manual_seed(0)))
        moved = recorder.take()
    assert first.shape[:4] == (2, model.config.n_layers, 17, 27)
    assert neighbour_flips(first, again).tolist() == [0, 0] and neighbour_flips(first, moved).min() > 0
    # The recorded sets are the adjacency the layer computes: K neighbours a row (more on exact ties).
    sets = np.unpackbits(first, axis=-1, count=27)
    assert (sets.sum(axis=-1) >= model.config.neighbour_num).all()
    nodes = torch.randn(3, 27, 8, generator=torch.Generator().manual_seed(1))
    assert similarity_adjacency(nodes, 4).sum(dim=-1).eq(4).all()
    with torch.no_grad():
        model(clip)                                   # outside recording(): no hook left behind
    assert recorder.sets == []


def test_rounding_noise_rounds_each_map_at_its_precision_and_restores_it(authors_checkpoint, clip):
    model = build_from_checkpoint(authors_checkpoint).eval()
    fc1, out = model.blocks[0].attn_spatial.mlp.fc1, model.head.out
    weights = {name: module.weight.clone() for name, module in (("fc1", fc1), ("out", out))}
    with torch.no_grad():
        plain = model(clip)
        moved = {}
        for precision in ("fp32", "fp16"):
            with rounding_noise(model, precision):
                fc1_error = ((fc1.weight - weights["fc1"]) / weights["fc1"]).abs().max()
                out_error = ((out.weight - weights["out"]) / weights["out"]).abs().max()
                moved[precision] = (model(clip) - plain).abs().mean()
            u, u32 = unit_roundoff(precision), unit_roundoff("fp32")
            assert u / 4 < fc1_error <= u + 2 * u32          # (+ the FP32 rounding of the product itself)
            # The head's last map stays FP32 in an FP16 graph (FP32_MODULES): FP32 rounding there.
            assert out_error <= 3 * u32
        assert torch.equal(model(clip), plain)                      # weights restored, hooks removed
    assert torch.equal(fc1.weight, weights["fc1"]) and torch.equal(out.weight, weights["out"])
    assert 0 < moved["fp32"] < moved["fp16"] / 100
    with pytest.raises(KasfError, match="no rounding model for precision 'fp8'"):
        with rounding_noise(model, "fp8"):
            pass


def test_floor_runs_and_their_envelope(check):
    floor = check.floor("fp32")
    assert floor is check.floor("fp32")                    # measured once per precision
    batch_split, rounding = floor["runs"]["batch_split"], floor["runs"]["rounding"]
    for key in ("mean_mm", "p50_mm", "p90_mm", "p99_mm", "max_mm"):
        assert floor["envelope"][key] == max(batch_split[key], rounding[key])
    assert 0 < floor["envelope"]["p50_mm"] < 0.01           # rounding-level noise, in mm
    assert len(rounding["flips_per_clip"]) == len(check.clips)
    assert check.floor("fp16")["envelope"]["mean_mm"] > 10 * floor["envelope"]["mean_mm"]
    assert check.floor("fp16")["runs"]["batch_split"] is batch_split


# ---------------------------------------------------------------------------------------------- verdicts

def test_the_reference_itself_passes_and_a_shifted_engine_fails_both_clauses(check):
    same = check.judge(check.reference.poses_mm, "fp32")
    assert same["passed"] and same["deviation"]["max_mm"] == 0
    shifted = check.reference.poses_mm.copy()
    shifted[..., 1:, 0] += 2.0                             # every joint but the root 2 mm to the side
    report = check.judge(shifted, "fp32")
    assert not report["passed"] and report["decided_by"] == ["task_metric", "floor"]
    assert report["task_metric"]["mpjpe"]["interval_mm"][0] > 0.05
    assert "FAIL on task metric and floor" in report["explanation"]


def test_a_correct_fp32_graph_passes(check, tiny_onnx):
    with load_engine(tiny_onnx, threads=1) as engine:
        report = check.check(engine)
    assert report["passed"], report["explanation"]
    assert report["sequences"] == 24 and len(report["actions"]) == 4


def test_a_graph_with_one_wrong_layernorm_fails_on_the_floor(check, tiny_onnx, tmp_path):
    """One LayerNorm's epsilon 1e-5 -> 1e-4: the MPJPE does not move beyond the budget, but the
    deviation lies far above what rounding does to the reference."""
    graph = onnx.load(tiny_onnx)
    norm = [node for node in graph.graph.node if node.op_type == "LayerNormalization"][3]
    next(a for a in norm.attribute if a.name == "epsilon").f = 1e-4
    wrong = tmp_path / "wrong_epsilon.onnx"
    onnx.save(graph, wrong)
    with load_engine(wrong, threads=1) as engine:
        report = check.check(engine)
    assert not report["passed"] and report["decided_by"] == ["floor"], report["explanation"]
    assert report["clauses"]["task_metric"]["passed"]
    assert "p50" in report["clauses"]["floor"]["reason"]


def test_non_finite_poses_are_an_error_that_names_them(check):
    broken = check.reference.poses_mm.copy()
    broken[5, 0, 3] = np.nan
    broken[7, 2, 1] = np.inf
    with pytest.raises(KasfError, match=r"NaN or Inf in 2 of 24 clips \(first: clip 5\): the engine is broken"):
        check.judge(broken, "fp32")


def test_floor_script_prints_the_spread_over_seeds():
    script = Path(__file__).parents[2] / "benchmarks" / "parity_floor.py"
    done = subprocess.run([sys.executable, str(script), "--checkpoint", str(AUTHORS_CHECKPOINT), "--config",
                           str(AUTHORS_YAML), "--precision", "fp32", "--seeds", "2", "--clips", "8", "--threads", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "the floor at fp32 rounding on 8 clips" in done.stdout
    assert "rounding, seed 1" in done.stdout and "batch split" in done.stdout
    assert "judged statistics vary by up to" in done.stdout


def test_few_sequences_are_said_to_understate_the_interval(authors_checkpoint):
    few = ParityCheck(build_from_checkpoint(authors_checkpoint), parity_clips(4))
    report = few.judge(few.reference.poses_mm, "fp32")
    assert report["fewest_sequences_per_action"] < 5 and "understate the uncertainty" in report["explanation"]
