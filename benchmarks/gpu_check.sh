#!/usr/bin/env bash
# Everything a lent GPU machine should run for kasf, in one call, within a fixed time budget.
#
#   benchmarks/gpu_check.sh [--dry-run] [--bundle FILE] OUT_DIR
#   benchmarks/gpu_check.sh --prepare DIR       (here, before the GPU call: what the GPU machine lacks)
#
# Steps, each bounded by `timeout`, each recorded (status, exit code, seconds) in OUT_DIR/summary.json
# and OUT_DIR/summary.txt; a failing step never stops the ones after it:
#   install          python -m pip install --no-deps -e . (offline: --no-index --no-build-isolation);
#                    if that fails, kasf is imported from the checkout (PYTHONPATH) and the step is failed
#   environment      nvidia-smi -L / --query-gpu, Python, torch, CUDA, cuDNN, ONNX (Runtime) versions, pip list
#   dependencies     each runtime dependency of pyproject.toml: version, or missing and what that breaks
#   setup            random-weight checkpoints (seed 0) of the bench and optimize presets, in the work dir
#   motion_capture   the embedded motion capture loads (parity, streaming and some tests need pybullet_data)
#   gpu_tests        pytest -rs over the test files with CUDA skip markers, junit XML in OUT_DIR
#   bench            kasf bench: torch FP32, FP16, FP16 + CUDA graphs on cuda, batch 1 8 32 128
#   realtime         kasf realtime: FP16 + CUDA graphs on cuda, causal, 1 8 32 people at 30 fps, search to 128
#   optimize         kasf optimize --device cuda --batch 1 8 (reports copied to OUT_DIR/optimize)
#   latency_accuracy kasf latency-accuracy on cuda, 8 test sequences, JSON and PNG
# Without a CUDA GPU (no nvidia-smi, or torch.cuda.is_available() False) it is a dry run: the first five
# steps run, each GPU step prints the exact command it would run and "skipped: no CUDA GPU (...)", and the
# exit code is 0 unless a step that ran failed. --dry-run (or GPU_CHECK_DRY_RUN=1) forces a dry run.
# --bundle FILE packs OUT_DIR (model files left out) into one tar.gz: a GPU machine returns eight files.
# Exit code: 1 when any step failed or timed out, 2 on bad usage, else 0.
#
# Environment (all optional):
#   GPU_CHECK_PYTHON           interpreter (default: the first of python3, python that imports torch)
#   GPU_CHECK_BUDGET_S         the whole run's time budget in seconds (default 450): a step gets at most
#                              what is left, and is skipped when under 15 s is left
#   GPU_CHECK_WORK             work directory for checkpoints and optimize's candidates (default: a fresh
#                              temporary directory, removed at the end; a given one is kept)
#   GPU_CHECK_PRESET           preset of the bench/realtime/latency checkpoint (default paper)
#   GPU_CHECK_OPTIMIZE_PRESET  preset of the optimize checkpoint (default small)
#   GPU_CHECK_SKIP_INSTALL=1   skip the pip install (the tests use it; kasf must already be importable)
#   GPU_CHECK_CARRY            a folder made by --prepare (default: .gpu_check in the checkout, if present)
#   GPU_CHECK_DRY_RUN=1        the same as --dry-run
#   GPU_CHECK_STEPS            run only these GPU steps (e.g. "bench realtime", for a rerun); the others
#                              are recorded as skipped; the host steps always run

set -u
START=$SECONDS   # the budget counts from here: the interpreter probe below is part of it

usage() {
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY_FORCED=""
BUNDLE=""
PREPARE=""
OUT_DIR=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_FORCED="--dry-run"; shift ;;
        --bundle) [ $# -ge 2 ] || usage; BUNDLE="$2"; shift 2 ;;
        --prepare) [ $# -ge 2 ] || usage; PREPARE="$2"; shift 2 ;;
        -h|--help) usage ;;
        -*) echo "gpu_check: unknown option $1" >&2; usage ;;
        *) [ -z "$OUT_DIR" ] || usage; OUT_DIR="$1"; shift ;;
    esac
done
if [ "${GPU_CHECK_DRY_RUN:-}" = "1" ] && [ -z "$DRY_FORCED" ]; then
    DRY_FORCED="GPU_CHECK_DRY_RUN=1"
fi

pick_python() {
    if [ -n "${GPU_CHECK_PYTHON:-}" ]; then
        echo "$GPU_CHECK_PYTHON"
        return
    fi
    local candidate
    for candidate in python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 && timeout 60 "$candidate" -c "import torch" >/dev/null 2>&1; then
            echo "$candidate"
            return
        fi
    done
    for candidate in python3 python; do
        if command -v "$candidate" >/dev/null 2>&1; then
            echo "$candidate"
            return
        fi
    done
    echo python3
}
PY="$(pick_python)"

# --prepare DIR: what the GPU machine lacks, to carry there: the DeepMimic clips and humanoid URDF of
# pybullet (1.4 MB; the embedded motion capture is built from them), as a data-only pybullet_data
# folder on PYTHONPATH. Wheels put in DIR/wheels are installed there too (--no-index --no-deps).
if [ -n "$PREPARE" ]; then
    "$PY" - "$PREPARE" <<'EOF' || exit 1
import shutil, sys
from pathlib import Path

try:
    import pybullet_data
except ImportError:
    sys.exit("gpu_check --prepare: pybullet is not installed here (pip install pybullet), nothing to copy")
source = Path(pybullet_data.getDataPath())
target = Path(sys.argv[1]) / "site" / "pybullet_data"
motions = sorted((source / "data" / "motions").glob("humanoid3d_*.txt"))
urdf = source / "humanoid" / "humanoid.urdf"
if not motions or not urdf.is_file():
    sys.exit(f"gpu_check --prepare: no DeepMimic clips or humanoid.urdf under {source}")
(target / "data" / "motions").mkdir(parents=True, exist_ok=True)
(target / "humanoid").mkdir(parents=True, exist_ok=True)
for path in motions:
    shutil.copyfile(path, target / "data" / "motions" / path.name)
shutil.copyfile(urdf, target / "humanoid" / "humanoid.urdf")
(Path(sys.argv[1]) / "wheels").mkdir(exist_ok=True)
print(f"copied {len(motions)} motion clips and humanoid.urdf to {target}")
print(f"carry {sys.argv[1]} to the GPU machine (and set GPU_CHECK_CARRY to it unless it is .gpu_check "
      "in the checkout); wheels put in its wheels/ folder are installed there with --no-index --no-deps")
EOF
    exit 0
fi

[ -n "$OUT_DIR" ] || usage
mkdir -p "$OUT_DIR" || exit 2
OUT="$(cd "$OUT_DIR" && pwd)"
mkdir -p "$OUT/logs" "$OUT/commands"
: > "$OUT/commands.sh"
STEPS="$OUT/logs/steps.tsv"
: > "$STEPS"
BUDGET="${GPU_CHECK_BUDGET_S:-450}"
PRESET="${GPU_CHECK_PRESET:-paper}"
OPT_PRESET="${GPU_CHECK_OPTIMIZE_PRESET:-small}"
if [ -n "${GPU_CHECK_WORK:-}" ]; then
    WORK="$GPU_CHECK_WORK"
    mkdir -p "$WORK" || exit 2
    WORK="$(cd "$WORK" && pwd)"
    OWN_WORK=""
else
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/kasf_gpu_check.XXXXXX")" || exit 2
    OWN_WORK=1
fi
mkdir -p "$WORK/py"
CARRY="${GPU_CHECK_CARRY:-}"
if [ -z "$CARRY" ] && [ -d "$REPO/.gpu_check" ]; then
    CARRY="$REPO/.gpu_check"
fi
if [ -n "$CARRY" ] && [ -d "$CARRY/site" ]; then
    CARRY="$(cd "$CARRY" && pwd)"
    export PYTHONPATH="$CARRY/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
CKPT="$WORK/${PRESET}_random.pt"
OPT_CKPT="$WORK/${OPT_PRESET}_random.pt"

say() { printf '[gpu_check %4ds] %s\n' "$((SECONDS - START))" "$*"; }
clean() { printf '%s' "$*" | tr '\t\n\r' '   ' | cut -c1-400; }

# record NAME KIND STATUS RC SECONDS TIMEOUT MESSAGE
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:--}" "$5" "$6" "$(clean "${7:--}")" >> "$STEPS"
    say "$1: $3${7:+ ($(clean "$7"))}"
}

# write_command NAME ARGV...: the exact command, one argument a line (commands/NAME.argv), and as a
# shell line (commands.sh).
write_command() {
    local name="$1"
    shift
    printf '%s\n' "$@" > "$OUT/commands/$name.argv"
    { printf '# %s\n' "$name"; printf '%q ' "$@"; printf '\n'; } >> "$OUT/commands.sh"
}

DRY=""          # why this is a dry run ("" on a GPU machine)
LAST_MESSAGE=""

# step NAME KIND CEILING_S ARGV...: run the command in the checkout under timeout, log to
# logs/NAME.log; KIND gpu is skipped on a dry run. Sets STEP_STATUS.
step() {
    local name="$1" kind="$2" ceiling="$3"
    shift 3
    write_command "$name" "$@"
    local log="$OUT/logs/$name.log"
    if [ "$kind" = gpu ] && [ -n "$DRY" ]; then
        say "$name: would run: $(printf '%q ' "$@")"
        record "$name" "$kind" skipped "" 0 0 "skipped: $DRY"
        STEP_STATUS=skipped
        return
    fi
    if [ "$kind" = gpu ] && [ -n "${GPU_CHECK_STEPS:-}" ] && [[ " $GPU_CHECK_STEPS " != *" $name "* ]]; then
        record "$name" "$kind" skipped "" 0 0 "skipped: not in GPU_CHECK_STEPS ($GPU_CHECK_STEPS)"
        STEP_STATUS=skipped
        return
    fi
    local left=$((BUDGET - (SECONDS - START) - 10))
    local limit=$ceiling
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 15 ]; then
        record "$name" "$kind" skipped "" 0 0 "skipped: out of time budget (${left}s of ${BUDGET}s left)"
        STEP_STATUS=skipped
        return
    fi
    say "$name: running (timeout ${limit}s): $(printf '%q ' "$@")"
    local began=$SECONDS rc
    ( cd "$REPO" && exec timeout -k 10 "$limit" "$@" ) > "$log" 2>&1 < /dev/null
    rc=$?
    local took=$((SECONDS - began)) status=ok message
    message="$(grep -v '^\s*$' "$log" | tail -n 1)"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        status=timeout
        message="killed after ${limit}s"
    elif [ "$rc" -ne 0 ]; then
        status=failed
        message="exit code $rc: $message"
    fi
    if [ "$status" != ok ]; then
        tail -n 15 "$log" | sed "s/^/    $name| /"
    fi
    LAST_RC=$rc LAST_TOOK=$took LAST_LIMIT=$limit LAST_STATUS=$status LAST_MESSAGE=$message
    STEP_STATUS=$status
}

# finish NAME KIND [CHECK_ARGV...]: record the step just run, after an optional check whose last
# output line becomes the message and whose failure fails the step.
finish() {
    local name="$1" kind="$2"
    shift 2
    [ "$STEP_STATUS" = skipped ] && return
    local status=$LAST_STATUS message=$LAST_MESSAGE
    if [ $# -gt 0 ]; then
        local checked crc
        checked="$(cd "$REPO" && timeout -k 5 15 "$@" 2>&1)"
        crc=$?
        printf '%s\n' "$checked" >> "$OUT/logs/$name.log"
        local last
        last="$(printf '%s\n' "$checked" | grep -v '^\s*$' | tail -n 1)"
        if [ "$crc" -ne 0 ] && [ "$status" = ok ]; then
            status=failed
        fi
        if [ "$LAST_STATUS" = ok ]; then
            message="$last"
        else
            message="${message:+$message; }$last"
        fi
    fi
    record "$name" "$kind" "$status" "$LAST_RC" "$LAST_TOOK" "$LAST_LIMIT" "$message"
}

# ---- the Python helpers the steps run (files, so that each step is one command under timeout) ----
cat > "$WORK/py/environment.py" <<'EOF'
"""Record the machine: GPU (nvidia-smi), Python, torch, CUDA, ONNX (Runtime), kasf, pip list."""
import datetime, importlib, json, platform, shutil, subprocess, sys
from pathlib import Path

out = Path(sys.argv[1])
info = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(), "platform": platform.platform(), "python": sys.version.split()[0],
        "executable": sys.executable, "commands": {}}
text = []


def command(argv):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        result = (done.stdout + done.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as err:
        result = f"{argv[0]}: {err}"
    info["commands"][" ".join(argv)] = result
    text.append(f"$ {' '.join(argv)}\n{result}\n")


if shutil.which("nvidia-smi"):
    command(["nvidia-smi", "-L"])
    command(["nvidia-smi", "--query-gpu=index,name,uuid,driver_version,memory.total,compute_cap,clocks.max.sm,"
             "clocks.max.memory,power.limit,persistence_mode,mig.mode.current", "--format=csv"])
    command(["nvidia-smi"])
else:
    text.append("nvidia-smi: not found\n")
if shutil.which("nvcc"):
    command(["nvcc", "--version"])
versions = {}
for name in ("torch", "numpy", "onnx", "onnxscript", "onnxruntime", "tensorrt", "cuda.bindings", "kasf"):
    try:
        module = importlib.import_module(name)
        versions[name] = getattr(module, "__version__", "?")
        if name == "kasf":
            versions["kasf_path"] = str(Path(module.__file__).parent)
        if name == "onnxruntime":
            versions["onnxruntime_providers"] = module.get_available_providers()
    except Exception as err:  # a missing or broken module is a fact to record
        versions[name] = f"unavailable ({type(err).__name__}: {err})"
info["versions"] = versions
try:
    import torch

    cuda = {"torch_cuda": torch.version.cuda, "available": torch.cuda.is_available(),
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "devices": []}
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(index)
            cuda["devices"].append({"name": p.name, "capability": f"{p.major}.{p.minor}",
                                    "memory_gib": round(p.total_memory / 2**30, 1),
                                    "multiprocessors": p.multi_processor_count})
    info["cuda"] = cuda
except Exception as err:
    info["cuda"] = {"error": f"{type(err).__name__}: {err}"}
text.append("versions: " + json.dumps(versions, indent=2) + "\n")
text.append("cuda: " + json.dumps(info["cuda"], indent=2) + "\n")
try:
    freeze = subprocess.run([sys.executable, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
                            capture_output=True, text=True, timeout=60).stdout
except (OSError, subprocess.TimeoutExpired) as err:
    freeze = f"pip list failed: {err}\n"
(out / "pip_freeze.txt").write_text(freeze)
(out / "environment.json").write_text(json.dumps(info, indent=2) + "\n")
(out / "environment.txt").write_text("\n".join(text))
print("".join(text[-2:]))
gpus = info["cuda"].get("devices") or []
print(f"python {info['python']}, torch {versions['torch']} (CUDA {info['cuda'].get('torch_cuda')}), "
      f"{gpus[0]['name'] if gpus else 'no CUDA device'}")
sys.exit(0 if not str(versions["torch"]).startswith("unavailable") else 1)
EOF

cat > "$WORK/py/dependencies.py" <<'EOF'
"""Each runtime dependency kasf needs on this machine: its version, or missing and what that breaks."""
import importlib, importlib.util, sys

# (import name, distribution, what needs it, required for this check)
NEEDS = [
    ("torch", "torch", "everything", True),
    ("numpy", "numpy", "everything", True),
    ("yaml", "PyYAML", "import kasf (kasf.model.config)", True),
    ("tqdm", "tqdm", "the kasf command line (kasf.cli imports every command; optimize and train use tqdm)", True),
    ("scipy", "scipy", "the kasf command line (kasf.keypoints.tracking)", True),
    ("onnx", "onnx", "the kasf command line, export, FLOP counts", True),
    ("onnxscript", "onnxscript", "ONNX export (torch.onnx dynamo): the FLOPs of bench and optimize, the tests", True),
    ("onnxruntime", "onnxruntime", "ONNX Runtime engines, the tests", True),
    ("pytest", "pytest", "the GPU tests", True),
    ("matplotlib", "matplotlib", "bench.png, the latency-accuracy plot", False),
    ("tensorboard", "tensorboard", "kasf train", False),
    ("PIL", "Pillow", "kasf lift's render", False),
    ("imageio_ffmpeg", "imageio-ffmpeg", "kasf lift's video", False),
    ("pybullet_data", "pybullet (or gpu_check.sh --prepare)", "the embedded motion capture: parity, realtime, "
     "latency-accuracy, parity tests", False),
]
missing_required = []
for module, dist, needed_by, required in NEEDS:
    if importlib.util.find_spec(module) is None:
        print(f"MISSING  {dist:37s} needed by {needed_by}")
        if required:
            missing_required.append(dist)
        continue
    try:
        version = getattr(importlib.import_module(module), "__version__", "present")
    except Exception as err:
        print(f"BROKEN   {dist:37s} {type(err).__name__}: {err}")
        missing_required += [dist] if required else []
        continue
    print(f"ok       {dist:37s} {version}")
if missing_required:
    print(f"missing: {', '.join(missing_required)} (no internet there: carry wheels, see gpu_check.sh --prepare)")
    sys.exit(1)
print("every dependency these checks need is importable")
EOF

cat > "$WORK/py/setup.py" <<'EOF'
"""Random-weight checkpoints (seed 0) of the presets the checks time: no trained checkpoint ships."""
import sys
from pathlib import Path

import torch

import kasf
from kasf.model.checkpoint import save_checkpoint

work = Path(sys.argv[1])
for preset in dict.fromkeys(sys.argv[2:]):
    path = work / f"{preset}_random.pt"
    if not path.is_file():
        torch.manual_seed(0)
        model = kasf.build_model(preset).eval()
        save_checkpoint(path, model, source={"note": f"{preset} preset, random weights (seed 0), gpu_check.sh"})
    parameters = sum(p.numel() for p in kasf.load_model(path).parameters())
    print(f"{path}: {preset} preset, {parameters:,} parameters, random weights")
EOF

cat > "$WORK/py/motion_capture.py" <<'EOF'
"""The embedded motion capture loads (parity clips and streamed test sequences are cut from it)."""
import sys

from kasf.errors import KasfError
from kasf.verify import parity_clips

try:
    clips = parity_clips(4)
except KasfError as err:
    print(f"{err}")
    print("the motion capture needs pybullet's DeepMimic clips: run `benchmarks/gpu_check.sh --prepare .gpu_check` "
          "where pybullet is installed and carry .gpu_check (parity, realtime, latency-accuracy and the parity "
          "tests fail without it)")
    sys.exit(1)
print(f"embedded motion capture loads ({len(clips)} parity clips cut)")
EOF

cat > "$WORK/py/check.py" <<'EOF'
"""After a step: read what it wrote, print one line for the summary, exit 1 when it shows a failure."""
import json, shutil, sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

kind, args = sys.argv[1], sys.argv[2:]
if kind == "junit":
    path = Path(args[0])
    if not path.is_file():
        sys.exit(print(f"no junit XML at {path}") or 1)
    root = ElementTree.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    count = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    reasons = sorted({(c.find("skipped").get("message") or "")[:90] for s in suites for c in s.iter("testcase")
                      if c.find("skipped") is not None})
    for reason in reasons:
        print(f"skipped: {reason}")
    passed = count["tests"] - count["failures"] - count["errors"] - count["skipped"]
    gpu_skips = [r for r in reasons if "cuda" in r.lower() or "gpu" in r.lower()]
    print(f"{passed} passed, {count['failures']} failed, {count['errors']} errors, {count['skipped']} skipped"
          f" ({len(gpu_skips)} distinct skip reasons name CUDA or a GPU: see logs/gpu_tests.log)")
    sys.exit(1 if count["failures"] or count["errors"] or not count["tests"] else 0)
if kind == "bench":
    path, expected = Path(args[0]), int(args[1])
    if not path.is_file():
        sys.exit(print(f"no {path}") or 1)
    rows = json.loads(path.read_text())["rows"]
    bad = [f"{r['engine']} batch {r.get('batch')}: {r['status']}" for r in rows if r["status"] != "ok"]
    for line in bad:
        print(line)
    ok = [r for r in rows if r["status"] == "ok"]
    best = {}
    for r in ok:
        best.setdefault(r["batch"], []).append((r["latency"]["median_ms"], r["engine"].split(":", 1)[-1]))
    fastest = "; ".join(f"b{b} {min(v)[0]:.2f} ms ({min(v)[1]})" for b, v in sorted(best.items()))
    print(f"{len(ok)}/{expected} rows ok; fastest median: {fastest}")
    sys.exit(0 if len(ok) == expected and not bad else 1)
if kind == "realtime":
    path = Path(args[0])
    if not path.is_file():
        sys.exit(print(f"no {path}") or 1)
    result = json.loads(path.read_text())
    print(f"most people sustainable: {result.get('most_people')}")
if kind == "optimize":
    work, out = Path(args[0]), Path(args[1])
    out.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "report.json", "best.json"):
        if (work / name).is_file():
            shutil.copyfile(work / name, out / name)
    if not (work / "report.json").is_file():
        sys.exit(print(f"no {work / 'report.json'}") or 1)
    report = json.loads((work / "report.json").read_text())
    for c in report.get("candidates", []):
        print(f"{c['name']}: {c['verdict']}")
    print(f"winner: {report.get('winner')}")
if kind == "files":
    missing = [p for p in args if not Path(p).is_file()]
    print(f"missing: {', '.join(missing)}" if missing else f"wrote {', '.join(Path(p).name for p in args)}")
    sys.exit(1 if missing else 0)
EOF

cat > "$WORK/py/summary.py" <<'EOF'
"""steps.tsv -> summary.json."""
import json, sys
from pathlib import Path

steps_file, out, dry, budget, total = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
steps = []
for line in steps_file.read_text().splitlines():
    name, kind, status, rc, seconds, timeout, message = (line.split("\t") + [""] * 7)[:7]
    steps.append({"name": name, "kind": kind, "status": status, "exit_code": int(rc) if rc.lstrip("-").isdigit() else None,
                  "seconds": int(seconds), "timeout_s": int(timeout), "message": "" if message == "-" else message,
                  "log": f"logs/{name}.log" if status not in ("skipped",) else None,
                  "command": f"commands/{name}.argv"})
failed = [s["name"] for s in steps if s["status"] in ("failed", "timeout")]
summary = {"dry_run": bool(dry), "dry_run_reason": dry or None, "budget_s": int(budget), "total_s": int(total),
           "failed": failed, "passed": not failed, "steps": steps}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
EOF

# ---- the steps ----
say "kasf GPU check: checkout $REPO, results in $OUT, work in $WORK, python $PY, budget ${BUDGET}s"

# install
if [ "${GPU_CHECK_SKIP_INSTALL:-}" = "1" ]; then
    write_command install "$PY" -m pip install --no-deps -e .
    record install host skipped "" 0 0 "skipped: GPU_CHECK_SKIP_INSTALL=1"
else
    if [ -n "$CARRY" ] && compgen -G "$CARRY/wheels/*.whl" > /dev/null; then
        step install_wheels host 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --disable-pip-version-check --upgrade --target "$WORK/site" "$CARRY"/wheels/*.whl
        finish install_wheels host
        export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    step install host 120 "$PY" -m pip install -q --no-deps --no-build-isolation --no-index \
        --disable-pip-version-check -e .
    if [ "$STEP_STATUS" != ok ]; then
        export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
        LAST_MESSAGE="${LAST_MESSAGE}; kasf is imported from the checkout (PYTHONPATH) instead"
    fi
    finish install host
fi

# dry run or GPU?
if ! command -v nvidia-smi > /dev/null 2>&1; then
    DRY="no CUDA GPU (nvidia-smi not found)"
else
    probe="$(timeout 60 "$PY" -c "import torch; print(torch.cuda.is_available())" 2>&1 | tail -n 1)"
    if [ "$probe" != "True" ]; then
        DRY="no CUDA GPU (torch.cuda.is_available() is not True: $(clean "$probe"))"
    elif [ -n "$DRY_FORCED" ]; then
        DRY="dry run ($DRY_FORCED)"
    fi
fi
if [ -n "$DRY" ]; then
    say "dry run: GPU steps are skipped: $DRY"
fi

step environment host 60 "$PY" "$WORK/py/environment.py" "$OUT"
finish environment host

step dependencies host 60 "$PY" "$WORK/py/dependencies.py"
cp "$OUT/logs/dependencies.log" "$OUT/dependencies.txt" 2>/dev/null
finish dependencies host

step setup host 60 "$PY" "$WORK/py/setup.py" "$WORK" "$PRESET" "$OPT_PRESET"
finish setup host

step motion_capture host 60 "$PY" "$WORK/py/motion_capture.py"
finish motion_capture host

# gpu_tests: every test file with a CUDA skip marker (this file's own test is left out: it runs this script)
mapfile -t GPU_TESTS < <(cd "$REPO" && grep -rlE --include='test_*.py' \
    'skipif\(.*cuda|pytest\.skip\(.*(CUDA|GPU)|bf16_unavailable\("cuda"\)' tests | grep -v 'tests/bench/test_gpu_check.py' | sort)
if [ "${#GPU_TESTS[@]}" -eq 0 ]; then
    write_command gpu_tests "$PY" -m pytest
    record gpu_tests gpu failed 1 0 0 "no test file with a CUDA skip marker found under tests/"
else
    step gpu_tests gpu 150 "$PY" -m pytest -q -rs -p no:cacheprovider --junitxml="$OUT/gpu_tests.xml" "${GPU_TESTS[@]}"
    finish gpu_tests gpu "$PY" "$WORK/py/check.py" junit "$OUT/gpu_tests.xml"
fi

# bench: torch FP32, FP16, FP16 + CUDA graphs on the GPU, batch 1 8 32 128 (the bench's parity column
# against the same checkpoint in FP32 on the CPU; FLOPs from one export of the preset)
BATCHES=(1 8 32 128)
step bench gpu 200 "$PY" -m kasf bench --engine "$CKPT:device=cuda" "$CKPT:device=cuda,precision=fp16" \
    "$CKPT:device=cuda,precision=fp16,cuda_graphs=true" --batch "${BATCHES[@]}" --out "$OUT/bench"
finish bench gpu "$PY" "$WORK/py/check.py" bench "$OUT/bench/bench.json" "$((3 * ${#BATCHES[@]}))"

# realtime: the streaming runtime on the GPU (FP16 + CUDA graphs), causal, 30 fps
step realtime gpu 100 "$PY" -m kasf realtime --engine "$CKPT" --device cuda --precision fp16 --cuda-graphs \
    --people 1 8 32 --fps 30 --seconds 3 --max-people 128 --json "$OUT/realtime.json"
finish realtime gpu "$PY" "$WORK/py/check.py" realtime "$OUT/realtime.json"

# optimize: every candidate on cuda, batch 1 8; candidates (checkpoint copies) stay in the work dir
step optimize gpu 120 "$PY" -m kasf optimize "$OPT_CKPT" --device cuda --batch 1 8 --out "$WORK/optimize"
finish optimize gpu "$PY" "$WORK/py/check.py" optimize "$WORK/optimize" "$OUT/optimize"

# latency_accuracy: streamed accuracy and latency on the GPU, 8 test sequences (random weights: the
# MPJPE says nothing; the latency, the work per pose and the GPU path do), JSON and PNG
step latency_accuracy gpu 60 "$PY" -m kasf latency-accuracy --engine "$CKPT" --device cuda --precision fp16 \
    --cuda-graphs --settings 0:1 13:1 0:27 --sequences 8 --json "$OUT/latency_accuracy.json" \
    --plot "$OUT/latency_accuracy.png"
finish latency_accuracy gpu "$PY" "$WORK/py/check.py" files "$OUT/latency_accuracy.json" "$OUT/latency_accuracy.png"

# ---- summary ----
TOTAL=$((SECONDS - START))
{
    printf 'kasf GPU check, %s, %ss of a %ss budget%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$TOTAL" "$BUDGET" \
        "${DRY:+; $DRY}"
    printf '%-17s %-5s %-8s %4s %6s %8s  %s\n' step kind status rc seconds timeout message
    while IFS=$'\t' read -r name kind status rc took limit message; do
        printf '%-17s %-5s %-8s %4s %6s %8s  %s\n' "$name" "$kind" "$status" "${rc:--}" "$took" "$limit" "$message"
    done < "$STEPS"
} > "$OUT/summary.txt"
"$PY" "$WORK/py/summary.py" "$STEPS" "$OUT" "$DRY" "$BUDGET" "$TOTAL" 2>> "$OUT/summary.txt" \
    || echo "summary.json not written (see summary.txt)" >&2
cat "$OUT/summary.txt"

if [ -n "$BUNDLE" ]; then
    mkdir -p "$(dirname "$BUNDLE")"
    tar -czf "$BUNDLE" -C "$OUT" --exclude='*.pt' --exclude='*.pt2' --exclude='*.onnx' --exclude='*.engine' . \
        && say "bundle: $BUNDLE ($(du -h "$BUNDLE" | cut -f1))"
fi
if [ -n "$OWN_WORK" ]; then
    rm -rf "$WORK"
fi
if cut -f3 "$STEPS" | grep -qxE 'failed|timeout'; then
    say "some steps failed: $(awk -F'\t' '$3 == "failed" || $3 == "timeout" {printf "%s ", $1}' "$STEPS")"
    exit 1
fi
exit 0
