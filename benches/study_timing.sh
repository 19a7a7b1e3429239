#!/usr/bin/env bash
# The study's full alignment sweeps, timed: the workload of the speed goals
# (README, Performance).
#
# The four alignment files of scenarios/study/ (cube d = 3 and 5, k = 1 and
# k = d, 12 values of c, Tanh and ReLU, 10 networks: 960 networks), each
# run as shipped except for what the workload fixes: 100 saved times,
# geometry at every one of them (flow and SGD), SGD in f32 and only the
# end weights kept. Every file is run whole by `repflow sweep` on all
# cores, one after another, and timed; the totals are printed at the end.
#
#   benches/study_timing.sh [OUT_DIR] [--probe]
#
# OUT_DIR (default target/study-timing) receives the derived scenarios,
# the output files (about 9 GB in all; a d = 5 file peaks at 10 GB of
# memory while it is written) and times.log. --probe runs one
# seed at c = c_max / 2 per file instead (two networks per file), half a
# minute in all, to check the set-up or compare builds (CI runs it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/target/study-timing"
probe=false
for arg in "$@"; do
    case "$arg" in
        --probe) probe=true ;;
        -*) echo "unknown option $arg" >&2; exit 2 ;;
        *) out="$arg" ;;
    esac
done
mkdir -p "$out"

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/repflow"

files=(alignment_d3_k1 alignment_d3_kd alignment_d5_k1 alignment_d5_kd)
for name in "${files[@]}"; do
    scenario="$out/$name.toml"
    sed -e 's/^saves = .*/saves = 100/' \
        -e 's/^\[sgd\]$/[sgd]\nprecision = "f32"/' \
        -e 's/^ends_only = .*/ends_only = true/' \
        "$root/scenarios/study/$name.toml" > "$scenario"
    if $probe; then
        # One seed at the default c = c_max / 2: no sweep table (it is
        # the files' last), one network seed.
        sed -i -e '/^\[sweep\]/,$d' -e 's/^networks = .*/networks = [0]/' "$scenario"
    fi
    printf '\n[geometry]\nevery = 1\n' >> "$scenario"
    # Fail here, not an hour in, if a derived file is not what was meant.
    for line in '^saves = 100$' '^precision = "f32"$' '^ends_only = true$'; do
        grep -q "$line" "$scenario" || { echo "$scenario: no line $line" >&2; exit 1; }
    done
    "$bin" -q validate "$scenario" > /dev/null
done

command=sweep
$probe && command=run
log="$out/times.log"
: > "$log"
total_ms=0
for name in "${files[@]}"; do
    start=$(date +%s%N)
    "$bin" -q "$command" "$out/$name.toml" -o "$out/$name.h5" --force
    ms=$((($(date +%s%N) - start) / 1000000))
    total_ms=$((total_ms + ms))
    printf '%s %d.%d s\n' "$name" $((ms / 1000)) $((ms % 1000 / 100)) | tee -a "$log"
done
printf 'all four files %d.%d s (%d min %d s)\n' $((total_ms / 1000)) $((total_ms % 1000 / 100)) \
    $((total_ms / 60000)) $((total_ms / 1000 % 60)) | tee -a "$log"
