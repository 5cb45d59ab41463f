"""`kasf demo` end to end through the real command line, with a tiny model and tiny timings."""

import json
import re
import shutil
import subprocess
import sys

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from kasf.demo.stages import STAGES

TINY = ["demo", "--preset", "tiny", "--minutes", "0.05", "--steps-per-epoch", "2", "--test-every", "8",
        "--parity-clips", "4", "--bench-duration", "0.05", "--bench-warmup", "0.01", "--bench-iterations", "2",
        "--peak-size", "128", "--people", "1", "2", "--replay-seconds", "0.2", "--strided-people", "3", "--latency-settings", "0:1", "13:7",
        "13:7:blend", "--latency-sequences", "2", "--gif-frames", "4", "--no-progress"]


def _kasf(*args):
    return subprocess.run([sys.executable, "-m", "kasf.cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def _markers(out):
    return {stage: json.loads((out / "stages" / f"{stage}.json").read_text()) for stage in STAGES}


def _summary_status(stdout):
    """stage -> ran/reused, from the summary table printed at the end."""
    rows = [line.split() for line in stdout.splitlines()]
    return {row[0]: row[1] for row in rows if len(row) > 2 and row[0] in STAGES and row[1] in ("ran", "reused")}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    result = _kasf(*TINY, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_demo_writes_a_report_with_real_images(demo_run):
    out, result = demo_run
    assert _summary_status(result.stdout) == {stage: "ran" for stage in STAGES}
    page = (out / "report.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert {"per_joint.png", "skeletons.png", "bench.png", "clip.gif", "parity.png",
            "latency_accuracy.png"} <= set(sources)
    for source in sources:
        assert "/" not in source                     # relative, beside the report
        with Image.open(out / source) as image:
            image.load()
            assert min(image.size) > 100
            pixels = np.asarray(image.convert("L"))
            assert pixels.std() > 5                  # a render, not a blank canvas
            if source.endswith(".gif"):
                assert image.n_frames == 4
    for section in ("Per motion", "Parity against PyTorch FP32", "Benchmark", "Streaming runtime",
                    "Latency against accuracy", "A real detector file, lifted"):
        assert section in page
    lifted = json.loads((out / "lift" / "lift.json").read_text())
    assert (lifted["format"], lifted["frames"], lifted["fps"]) == ("openpose", 100, 60)
    assert len(list((out / "lift").glob("poses*.trc"))) == lifted["tracks"] >= 2
    assert np.load(out / "lift" / "poses.npz")["poses"].shape == (lifted["tracks"], 100, 17, 3)
    assert '<video src="lift/lifted.mp4"' in page
    reader = imageio_ffmpeg.read_frames(str(out / "lift" / "lifted.mp4"))
    assert next(reader)["size"][1] == 540 and sum(1 for _ in reader) == 100
    latency = json.loads((out / "latency_accuracy.json").read_text())["rows"]
    assert [row["setting"] for row in latency] == ["0:1", "13:7", "13:7:blend"]
    assert all(f"<td>{row['setting']}</td>" in page for row in latency)
    realtime = json.loads((out / "realtime.json").read_text())["runs"]
    assert [(r["people"], r["stride"], r["worker"]) for r in realtime] == [(1, 1, False), (2, 1, False), (3, 27, True)]
    parity = json.loads((out / "parity.json").read_text())
    assert parity and all(f"<td>{report['engine']}</td>" in page and report["floor"]["envelope"]["mean_mm"] >= 0
                          for report in parity)
    assert "floor mean" in page and "dMPJPE" in page
    for motion in ("run", "spinkick", "dance_b", "getup_faceup"):
        assert f"<td>{motion}</td>" in page
    engines = json.loads((out / "engines.json").read_text())
    tensorrt = [row for row in engines if row["backend"] == "tensorrt"]
    assert tensorrt and all(row["status"] == "ok" or row["status"].startswith(("skipped", "build failed"))
                            for row in tensorrt)
    assert (out / "model_fp32.onnx").is_file() and (out / "model_fp16.onnx").is_file()
    assert not list(out.glob("**/*.tmp")) and not list(out.glob(".bench.*"))


def test_rerun_reuses_finished_stages_resumes_and_force_redoes(demo_run):
    out, _ = demo_run
    first = _markers(out)

    again = _kasf(*TINY, "--out", out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _summary_status(again.stdout) == {stage: "reused" for stage in STAGES}
    assert _markers(out) == first

    # An interruption during the benchmark: its marker never got written; the rerun starts there.
    (out / "stages" / "bench.json").unlink()
    resumed = _kasf(*TINY, "--out", out)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    order = list(STAGES)
    expected = {stage: "reused" if order.index(stage) < order.index("bench") else "ran" for stage in STAGES}
    assert _summary_status(resumed.stdout) == expected
    markers = _markers(out)
    assert all(markers[s]["finished"] == first[s]["finished"] for s in STAGES if expected[s] == "reused")
    assert all(markers[s]["finished"] > first[s]["finished"] for s in STAGES if expected[s] == "ran")

    forced = _kasf(*TINY, "--out", out, "--force")
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert _summary_status(forced.stdout) == {stage: "ran" for stage in STAGES}
    assert all(m["finished"] > markers[s]["finished"] for s, m in _markers(out).items())

    # A parity stage finished by the release before the task-metric parity: its report has another
    # form, so it is redone (with everything after it) instead of being handed to the report.
    marker = out / "stages" / "parity.json"
    old = json.loads(marker.read_text())
    old["depends"].pop("format")
    marker.write_text(json.dumps(old))
    upgraded = _kasf(*TINY, "--out", out)
    assert upgraded.returncode == 0, upgraded.stderr[-3000:]
    assert _summary_status(upgraded.stdout) == {
        stage: "reused" if order.index(stage) < order.index("parity") else "ran" for stage in STAGES}


def test_demo_usage_errors_exit_1_with_a_message(tmp_path):
    result = _kasf("demo", "--minutes", "0", "--out", tmp_path / "demo", "--no-progress")
    assert result.returncode == 1
    assert "kasf demo: error: --minutes must be positive" in result.stderr
    help_text = _kasf("demo", "--help").stdout
    assert "kasf demo --quick" in help_text and "--test-every" not in help_text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed: no headless "
                                                               "browser to screenshot report.html with")
def test_report_renders_in_a_browser(demo_run, tmp_path):
    out, _ = demo_run
    shot = tmp_path / "report.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1280,2000", (out / "report.html").resolve().as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.is_file()
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"))
    assert image.size == (1280, 2000) and pixels.std() > 5
