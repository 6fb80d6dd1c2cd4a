#!/usr/bin/env bash
# Build ember's CPU code with AddressSanitizer + UndefinedBehaviorSanitizer into build/asan and run the
# CPU test suite against that build.
#
#   tools/sanitize.sh                      # the whole default (not slow) CPU suite
#   tools/sanitize.sh tests/test_io.py -x  # any pytest arguments: a subset
#   EMBER_SANITIZE=address tools/sanitize.sh
#
# Python itself is not instrumented, so the ASan runtime is preloaded (it must be the first library
# loaded) and leak detection is off: the interpreter's own allocations are never freed at exit and
# would drown the report. UBSan findings abort (-fno-sanitize-recover), so a run passes only if clean.
#
# The sanitized extension is staged next to symlinks of python/ember in build/asan/stage, which
# goes first on PYTHONPATH; a sitecustomize.py there drops an editable install's import hook, which
# would otherwise win. Subprocesses the tests start (examples, the CLI, kill tests) inherit both, so
# they run the sanitized build too.
set -euo pipefail
cd "$(dirname "$0")/.."

sanitizers="${EMBER_SANITIZE:-address,undefined}"
build=build/asan
stage="$build/stage"
python="${PYTHON:-python}"

cmake -S . -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Debug \
  -DEMBER_CUDA=OFF \
  -DEMBER_SANITIZE="$sanitizers" \
  -DPython_EXECUTABLE="$(command -v "$python")" \
  -Dpybind11_DIR="$("$python" -m pybind11 --cmakedir)" > "$build.configure.log"
cmake --build "$build" -j "${JOBS:-2}"

rm -rf "$stage" && mkdir -p "$stage/ember"
for entry in python/ember/*; do
  [[ "$(basename "$entry")" == _C.* ]] || ln -s "$PWD/$entry" "$stage/ember/"
done
cp "$build"/_C*.so "$stage/ember/"
cat > "$stage/sitecustomize.py" <<'EOF'
import sys
sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("_editable")]
EOF
export PYTHONPATH="$PWD/$stage${PYTHONPATH:+:$PYTHONPATH}"
# libstdc++ is preloaded too: the interpreter does not link it, and ASan must find the real
# __cxa_throw when it starts, or the first C++ exception (a ValueError for bad input) aborts.
export LD_PRELOAD="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libstdc++.so)"
# allocator_may_return_null: an impossible allocation returns NULL as malloc does, so the tests of
# MemoryError run (ASan would abort on it). Any finding aborts the run (exit 134). pytest captures only Python's sys.stderr (--capture=sys),
# so the sanitizers' reports, written to the real stderr, are seen even though the process dies.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

# The sanitized build is what runs: refuse to test anything else.
"$python" -c "import ember._C as c, sys; sys.exit(0 if c.__file__.startswith('$PWD/$stage') else 1)" \
  || { echo "sanitize: ember._C does not come from $stage" >&2; exit 1; }
exec "$python" -m pytest -p no:cacheprovider --capture=sys --ignore=tests/cuda "$@"
