#!/bin/sh
# Issue 17, matrix: a matrix expands when the workflow loads (`vulcan parse` lists every
# copy, the JSON form gives each its combination), and under `vulcan run` (a real server
# and worker) every copy runs with {matrix.KEY} filled in and $MATRIX_<KEY> set, named by
# its combination; a failing copy fails the chain; max-parallel holds copies back and
# fail-fast #false lets the others finish.
# Usage: test_matrix.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"

cat >"$tmp/m.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment {
        name "t"
        matrix {
            cc "gcc" "clang"
            os "deb" "ubu"
            exclude { cc "clang"; os "ubu"; }
            include { cc "gcc"; flags "-O3"; }
            include { cc "tcc"; os "deb"; }
        }
        env { WHO "{matrix.cc}-{matrix.os}"; }
        run "echo \"copy cc=$MATRIX_CC os=$MATRIX_OS flags=${MATRIX_FLAGS:-none} who=$WHO literal={matrix.cc}\""
    }
    fragment { name "after"; run "echo after-ran" }
}
KDL
cd "$tmp" || exit 1

"$vulcan" parse m.kdl >"$tmp/parse" 2>&1
check "vulcan parse loads the matrix" $?
grep -q 'matrix of 4 "t"' "$tmp/parse"
check "vulcan parse shows the matrix group with its 4 copies" $?
for n in 't (gcc, deb, -O3)' 't (gcc, ubu, -O3)' 't (clang, deb)' 't (tcc, deb)'; do
    grep -qF "fragment \"$n\"" "$tmp/parse"
    check "vulcan parse lists copy '$n'" $?
done
! grep -q 'clang, ubu' "$tmp/parse"
check "the excluded combination is not there" $?
"$vulcan" parse --json m.kdl >"$tmp/json" 2>&1
python3 - "$tmp/json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
g = d["fragments"][0]
assert g["matrix"] is True and g["parallel"] is True, g
vals = [c["matrix_values"] for c in g["children"]]
assert vals == [{"cc": "gcc", "os": "deb", "flags": "-O3"}, {"cc": "gcc", "os": "ubu", "flags": "-O3"},
                {"cc": "clang", "os": "deb"}, {"cc": "tcc", "os": "deb"}], vals
assert g["children"][3]["env"]["MATRIX_CC"] == "tcc", g["children"][3]["env"]
PY
check "vulcan parse --json gives each copy its combination and MATRIX_ variables" $?

timeout 120 "$vulcan" run --sandbox none m.kdl >"$tmp/out" 2>"$tmp/err"
check "vulcan run of the matrix completes (exit 0)" $?
for line in 'copy cc=gcc os=deb flags=-O3 who=gcc-deb literal=gcc' \
    'copy cc=gcc os=ubu flags=-O3 who=gcc-ubu literal=gcc' \
    'copy cc=clang os=deb flags=none who=clang-deb literal=clang' \
    'copy cc=tcc os=deb flags=none who=tcc-deb literal=tcc'; do
    grep -qF "$line" "$tmp/out"
    check "a copy printed '$line'" $?
done
[ "$(grep -c '^\[t (.*\] copy cc=' "$tmp/out")" -eq 4 ]
check "exactly four copies ran, each under its own name" $?
grep -q "after-ran" "$tmp/out"
check "the next sibling ran after the matrix" $?
sed -n '/^FRAGMENT /,/^chain /p' "$tmp/out" | grep -q '^t  .* completed'
check "the summary shows the matrix group completed" $?

cat >"$tmp/fail.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment {
        name "n"
        matrix { n 1 2 3; }
        run "test {matrix.n} -ne 2"
    }
}
KDL
timeout 120 "$vulcan" run --sandbox none --concurrency 1 fail.kdl >"$tmp/out2" 2>"$tmp/err2"
check "a failing copy fails the run (exit 1)" $([ $? -eq 1 ]; echo $?)
grep -q '^  n (2) .* failed' "$tmp/out2"
check "the summary names the failed copy 'n (2)'" $?
# max-parallel 1 on a worker that could run 4 at once: the copies never overlap (each
# writes its start and end time; no start falls before the previous copy's end).
cat >"$tmp/mp.kdl" <<KDL
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment {
        name "s"
        matrix { k "a" "b" "c"; max-parallel 1; }
        run "echo start \$(date +%s%N) >> $tmp/times-{matrix.k}; sleep 0.3; echo end \$(date +%s%N) >> $tmp/times-{matrix.k}"
    }
}
KDL
timeout 120 "$vulcan" run --sandbox none --concurrency 4 mp.kdl >"$tmp/out3" 2>"$tmp/err3"
check "a max-parallel 1 matrix completes" $?
cat "$tmp"/times-a "$tmp"/times-b "$tmp"/times-c 2>/dev/null | sort -k2n | awk '
    { if ($1 == "start") { if (open) bad = 1; open = 1 } else open = 0; n++ }
    END { exit (bad || n != 6) }'
check "max-parallel 1: the three copies ran one after another, never two at once" $?

# fail-fast #false: one copy fails, the others still run; the chain fails at the end.
cat >"$tmp/ff.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment {
        name "f"
        matrix { n 1 2 3; max-parallel 1; fail-fast #false; }
        run "echo ran-{matrix.n}; test {matrix.n} -ne 1"
    }
    fragment { name "later"; run "echo later-ran" }
}
KDL
timeout 120 "$vulcan" run --sandbox none --concurrency 1 ff.kdl >"$tmp/out4" 2>"$tmp/err4"
check "fail-fast #false: the run fails (exit 1)" $([ $? -eq 1 ]; echo $?)
grep -q "ran-2" "$tmp/out4" && grep -q "ran-3" "$tmp/out4"
check "fail-fast #false: the copies after the failing one still ran" $?
! grep -q "later-ran" "$tmp/out4"
check "fail-fast #false: what comes after the failed matrix is skipped" $?
finish
