"""The demo's one HTML page: every stage's results, read back from the JSON files the stages wrote,
as tables beside the figures."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..table import format_cell

if TYPE_CHECKING:
    from .run import Demo, DemoSettings


def html_table(headers: list[str], rows: list[list[Any]], digits: int = 2) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(format_cell(v, digits))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:14px}th,td{border:1px solid #ccc;padding:3px 8px}
td{text-align:right}td:first-child{text-align:left}th{background:#f0f0f0}img{max-width:100%;border:1px solid #ddd}
.note{color:#666;font-size:13px}"""


def render_html(demo: Demo) -> str:
    """The page, one section per part of the pipeline, in the order the stages ran."""
    evaluation = demo.read("evaluation.json")
    engines = demo.read("engines.json")
    parity = demo.read("parity.json")
    bench = demo.read("bench.json")
    realtime = demo.read("realtime.json")
    latency = demo.read("latency_accuracy.json")
    lifted = demo.read("lift/lift.json")
    sections = [_introduction(demo, bench["environment"]), _accuracy(evaluation), _engines_and_parity(engines, parity),
                _benchmark(demo.settings, bench), _streaming(demo.settings, realtime), _latency(latency),
                _lift(lifted), "</body></html>\n"]
    return "\n".join(sections)


def _introduction(demo: Demo, env: dict) -> str:
    """The head, what was trained on which machine, and each stage's one-line result."""
    from .stages import STAGES     # here, not at the top: the stages import this module to write the page

    train = demo.results.get("train", {})
    settings = demo.settings
    stage_rows = [[name, (demo.results.get(name) or {}).get("result", "")] for name in STAGES if name != "report"]
    machine = f"{env['cpu']}, {env['usable_cpus']} CPUs" + (f", {env['gpus'][0]['name']}" if env["gpus"] else "")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>kasf demo report</title><style>{_STYLE}</style></head><body>
<h1>kasf demo: KASportsFormer on the embedded motion capture</h1>
<p>Preset <b>{html.escape(settings.preset)}</b> ({train.get('parameters', 0):,} parameters) trained for up to
{settings.minutes:g} min on {html.escape(settings.device)}: {html.escape(train.get('result', ''))}.
Test motions were never seen in training. Machine: {html.escape(machine)}. Written {when}.</p>
<h2>Stages</h2>
{html_table(["stage", "result"], stage_rows)}"""


def _accuracy(evaluation: dict) -> str:
    from ..keypoints.skeleton import JOINT_NAMES

    overall = [["clips", evaluation["clips"]], ["MPJPE (mm)", evaluation["mpjpe"]],
               ["P-MPJPE (mm)", evaluation["p_mpjpe"]], ["upper body (mm)", evaluation["upper_body"]],
               ["lower body (mm)", evaluation["lower_body"]],
               ["acceleration error (mm/frame²)", evaluation.get("acceleration_error")]]
    motions = [[a, v, evaluation["per_action_p_mpjpe"][a]] for a, v in evaluation["per_action_mpjpe"].items()]
    joints = [[name, evaluation["per_joint"][name]] for name in JOINT_NAMES]
    return f"""<h2>Accuracy on the test motions</h2>
{html_table(["metric", "value"], overall)}
<h3>Per motion</h3>
{html_table(["motion", "MPJPE (mm)", "P-MPJPE (mm)"], motions)}
<h3>Per joint</h3>
<img src="per_joint.png" alt="MPJPE per joint">
<details><summary>per-joint table</summary>{html_table(["joint", "MPJPE (mm)"], joints)}</details>
<h3>Predicted against true poses</h3>
<img src="skeletons.png" alt="3D skeletons, predicted and true, of test clips">
<p><img src="clip.gif" alt="animated test sequence, predicted and true"></p>"""


def _engines_and_parity(engines: list[dict], parity: list[dict]) -> str:
    from ..verify.report import SUMMARY_COLUMNS, summary_row

    engine_rows = [[r["name"], r["backend"], r["precision"], r["device"], r["path"], r["status"]] for r in engines]
    parity_rows = [summary_row(r["engine"], r) for r in parity]
    return f"""<h2>Engines</h2>
{html_table(["engine", "backend", "precision", "device", "file", "status"], engine_rows)}
<h2>Parity against PyTorch FP32 (mm)</h2>
<p class="note">Per-joint deviation from the reference beside the reference's own noise floor (PyTorch FP32
against itself at another batch split and under rounding noise of the engine's precision), and the
difference in MPJPE against the ground truth with its paired bootstrap 95% interval over sequences.
An engine passes when both intervals lie within the budget and its deviation within the floor.</p>
{html_table(list(SUMMARY_COLUMNS), parity_rows, 4)}
{"".join(f'<p class="note">{html.escape(r["engine"])}: {html.escape(r["explanation"])}</p>' for r in parity)}
<img src="parity.png" alt="parity per joint: deviation, floor and MPJPE difference">"""


def _benchmark(settings: DemoSettings, bench: dict) -> str:
    bench_rows = [[r["engine"], r.get("precision"), r.get("device"), r["status"], r.get("batch"),
                   r.get("latency", {}).get("median_ms"), r.get("latency", {}).get("p99_ms"), r.get("clips_per_s"),
                   r.get("frames_per_s"), r.get("gflops_per_s")] for r in bench["rows"]]
    return f"""<h2>Benchmark</h2>
<p class="note">Interleaved timing (kasf bench), batches {', '.join(map(str, settings.bench_batches))},
at least {settings.bench_duration_s:g} s per batch; latency end to end (numpy in, numpy out).</p>
{html_table(["engine", "precision", "device", "status", "batch", "p50 ms", "p99 ms", "clips/s", "frames/s",
             "GFLOP/s"], bench_rows)}
<img src="bench.png" alt="benchmark: latency and throughput against batch">
{"".join(f'<p class="note">note: {html.escape(n)}</p>' for n in bench["notes"])}"""


def _streaming(settings: DemoSettings, realtime: dict) -> str:
    replay_rows = [[r["people"], r["fps"], r["lag"], r["stride"], r["worker"], r["frames"], r["dropped"],
                    r["engine_p50_ms"], r["total_p99_ms"], 1e3 / r["fps"], r["window_p99_ms"],
                    r["pose_latency_ms_mean"], r["keeps_up"]] for r in realtime["runs"]]
    return f"""<h2>Streaming runtime</h2>
<p class="note">{html.escape(realtime['engine'])} replaying recorded people at {settings.fps:g} fps for
{settings.replay_seconds:g} s each: causal (lag 0, stride 1), then lag 0, stride 27 with the engine worker
(one window per track every 27 frames, lifted beside the frame loop); latency in ms. It keeps up when the p99
frame latency is within the frame budget, the p99 window latency (a window falling due to its poses being
ready) within stride budgets, and at most 1% of frames are dropped.</p>
{html_table(["people", "fps", "lag", "stride", "worker", "frames", "dropped", "engine p50", "total p99", "budget",
             "window p99", "pose latency mean", "keeps up"], replay_rows)}"""


def _latency(latency: dict) -> str:
    rows = [[r["setting"], r["latency_frames_mean"], r["latency_frames_max"], r["windows_per_pose"], r["mpjpe_mm"],
             None if r["mpjpe_vs_centred"] is None else f"{100 * r['mpjpe_vs_centred']:+.1f}%", r["p_mpjpe_mm"],
             r["acceleration_mm"]] for r in latency["rows"]]
    return f"""<h2>Latency against accuracy</h2>
<p class="note">{html.escape(latency['engine'])}: {latency['rows'][0]['frames']} frames of test sequences streamed
through the runtime, one track per sequence, every returned pose compared with its own frame's ground truth.
lag: frames the newest returned pose lies behind the newest keypoints; stride: poses per engine window;
blend: each pose the mean of every window that held its frame. The acceleration error shows jitter where
windows meet. People sustained per setting: <code>kasf latency-accuracy --people</code>.</p>
{html_table(["lag:stride", "latency frames mean", "max", "windows/pose", "MPJPE mm", "vs centred", "P-MPJPE mm",
             "accel mm/frame²"], rows)}
<img src="latency_accuracy.png" alt="streamed MPJPE against mean latency per lag and stride">"""


def _lift(lifted: dict) -> str:
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in lifted["notes"])
    return f"""<h2>A real detector file, lifted</h2>
<p class="note">kasf lift on {lifted['frames']} frames of real OpenPose output ({html.escape(lifted['layout'])},
Pose2Sim's demo, BSD-3) with its {lifted['image_size'][0]:g}x{lifted['image_size'][1]:g} video at
{lifted['fps']:g} fps, on {html.escape(lifted['engine'])}: {lifted['tracks']} tracks, centred (lag 13, stride 1).
Scale: {html.escape(lifted['scale'])}. Files: {html.escape(', '.join(lifted['written']))}.</p>
<ul class="note">{notes}</ul>
<video src="lift/lifted.mp4" controls loop muted autoplay playsinline style="max-width:100%"></video>"""
