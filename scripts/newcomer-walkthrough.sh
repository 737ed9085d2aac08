#!/usr/bin/env bash
# A newcomer's first hour, scripted: a fresh venv, the README's first command, `init`,
# `validate` of three classic mistakes, a run with its summary, `compare` of two grid points.
# (The README's second command, `pip install -e ".[test]" && pytest`, is what .ci/run runs.)
#
#   scripts/newcomer-walkthrough.sh [WORK_DIR]      (default: a new temporary folder)
#
# Nothing is written into the checkout: its files are copied to WORK_DIR/src and installed
# from there. The venv is made with --system-site-packages so that pip resolves the
# dependencies from the packages already installed (fast, no download of numpy & co; the
# venv still gets its own gprpipe, checked below); the build backend is fetched by pip's
# build isolation as in a plain `pip install .`.
# Each step prints "::: ok <step>"; the first failure stops the script with its output.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-$(mktemp -d -t gprpipe-walk.XXXXXX)}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
unset PYTHONPATH
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg NO_COLOR=1
PY="${PYTHON:-python3}"
t0=$(date +%s)
ok() { echo "::: ok $* ($(( $(date +%s) - t0 )) s)"; }
fail() { echo "::: FAILED $*" >&2; exit 1; }
# expect CODE SENTENCE CMD...: CMD exits with CODE and prints SENTENCE (fixed string)
expect() {
    local code="$1" sentence="$2"; shift 2
    local out rc=0
    out="$("$@" 2>&1)" || rc=$?
    [ "$rc" = "$code" ] || fail "$* exited $rc, not $code: $out"
    grep -qF -- "$sentence" <<<"$out" || fail "$* did not say: $sentence; it said: $out"
    printf '%s\n' "$out"
}

# ---- a copy of the checkout (tracked and new files, as they are now)
mkdir -p "$WORK/src"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard) | "${PYTHON:-python3}" -c '
import shutil, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
for name in sys.stdin.read().split("\0"):
    if name and (src / name).is_file():
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / name, dst / name)
' "$REPO" "$WORK/src"

# ---- README, first command: pip install . && gprpipe run user_configs/quickstart.toml
"$PY" -m venv --system-site-packages "$WORK/venv"
# shellcheck disable=SC1091
. "$WORK/venv/bin/activate"
cd "$WORK/src"
pip install --quiet .
where="$(cd "$WORK" && python -c 'import gprpipe; print(gprpipe.__file__)')"
case "$where" in "$WORK/venv/"*) ;; *) fail "gprpipe imported from $where, not the venv";; esac
[ "$(command -v gprpipe)" = "$WORK/venv/bin/gprpipe" ] || fail "gprpipe is not the venv's"
ok install
out="$(gprpipe run user_configs/quickstart.toml)"
printf '%s\n' "$out" | tail -12
grep -qF "Summary of $WORK/src/runs/quickstart" <<<"$out" || fail "no summary after the run"
[ -s runs/quickstart/nominal/scan.csv ] && [ -s runs/quickstart/nominal/plots/brazil_eps2_demo.png ] \
    || fail "the quickstart wrote no scan.csv or Brazil plot"
ok quickstart

# ---- a config of one's own, in a folder of one's own
mkdir -p "$WORK/analysis" && cd "$WORK/analysis"
expect 0 "wrote mine.toml" gprpipe init mine --template hps2015
expect 1 "did you mean 'hps2015'?" gprpipe init other --template hps215
expect 0 "mine.toml: valid" gprpipe validate mine.toml
ok init

# ---- three classic mistakes: validate refuses each with one sentence naming the key
expect 1 "error: --set scan.masses: 30 is not a mass in GeV; did you mean 0.030 GeV?" \
    gprpipe validate mine.toml --set "scan.masses=[30, 60]"
ok "mistake 1"
expect 1 "histogram 'h_invM' not found; closest of its 1 1-D histogram: input_hist." \
    gprpipe validate mine.toml --set datasets.2015.hist=h_invM
ok "mistake 2"
expect 1 "error: --set blind_nsigma: unknown key; did you mean 'fit.blind_nsigma'?" \
    gprpipe validate mine.toml --set blind_nsigma=1.96
ok "mistake 3"

# ---- a run with its summary: two grid points (blind windows), three masses
cat >> mine.toml <<'EOF'

[grid]
"fit.blind_nsigma" = [1.64, 1.96]
EOF
sed -i "s/^# masses = \[[^]]*\]/masses = [0.040, 0.060, 0.090]/" mine.toml
grep -q '^masses = \[0.040, 0.060, 0.090\]' mine.toml || fail "could not set scan.masses"
out="$(gprpipe run mine.toml --steps load,fit,limit)"
printf '%s\n' "$out" | tail -16
for s in "Summary of $WORK/analysis/runs/mine" "blind_nsigma-1.64" "blind_nsigma-1.96" \
         "most significant:" "eps^2 limits: strongest"; do
    grep -qF "$s" <<<"$out" || fail "the run's summary lacks: $s"
done
ok run
again="$(gprpipe summary runs/mine)"
[ "$again" = "$(printf '%s\n' "$out" | sed -n "/^Summary of /,\$p")" ] \
    || fail "gprpipe summary differs from the run's summary"
ok summary

# ---- compare the two grid points
expect 0 "eps^2 limit / blind_nsigma-1.64" gprpipe compare runs/mine
[ -s runs/mine/compare/compare_eps2_2015.png ] && [ -s runs/mine/compare/compare_2015.csv ] \
    || fail "compare wrote no figure or table"
ok compare
echo "walk-through passed in $(( $(date +%s) - t0 )) s (work folder $WORK)"
