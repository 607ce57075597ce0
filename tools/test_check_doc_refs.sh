#!/usr/bin/env bash
# Self-test of tools/check_doc_refs.sh (ctest: check_doc_refs_selftest): on a small fake project it must accept good
# references and reject each kind of bad one with a line naming that reference. Exits 1 on the first surprise.
set -uo pipefail
checker="$(cd "$(dirname "$0")" && pwd)/check_doc_refs.sh"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/kernels/cpu" "$tmp/docs"
printf 'int real_function(int x) { return x; }\nstruct Thing { void method(); };\nvoid Thing::method() {}\n' \
  > "$tmp/kernels/cpu/demo.cpp"

failures=0
# expect NAME STATUS TEXT PAGE_LINES...: the checker on a page made of PAGE_LINES exits with STATUS and (when TEXT
# is not empty) prints TEXT.
expect() {
  local name="$1" status="$2" text="$3"
  shift 3
  printf '%s\n' "$@" > "$tmp/docs/page.md"
  local out rc
  out="$(bash "$checker" --root "$tmp" "$tmp/docs/page.md" 2>&1)"
  rc=$?
  if [[ $rc -ne $status ]] || [[ -n "$text" && "$out" != *"$text"* ]]; then
    echo "FAIL $name: exit $rc (wanted $status), output:"
    echo "$out" | sed 's/^/    /'
    failures=$((failures + 1))
  else
    echo "ok   $name: $(echo "$out" | head -1)"
  fi
}

expect "good references pass" 0 "all good" \
  'See `kernels/cpu/demo.cpp`, `kernels/cpu/demo.cpp: real_function, Thing::method` and `kernels/cpu/`.' \
  'A pattern `kernels/cpu/<op>.cpp` is not a reference; neither is `build/filmgrad`. [self](page.md)'
expect "a missing file fails" 1 '`kernels/cpu/missing.cpp`: no file or folder kernels/cpu/missing.cpp' \
  'Good: `kernels/cpu/demo.cpp`.' 'Bad: `kernels/cpu/missing.cpp`.'
expect "a missing symbol fails" 1 'no symbol no_such_function in kernels/cpu/demo.cpp' \
  '`kernels/cpu/demo.cpp: real_function, no_such_function`'
expect "a symbol matches whole words only" 1 'no symbol real_func in' '`kernels/cpu/demo.cpp: real_func`'
expect "a malformed reference fails" 1 'not a reference' '`kernels/cpu/demo.cpp:real_function`'
expect "a symbol on a folder fails" 1 'is a folder' '`kernels/cpu/: real_function`'
expect "a broken link fails" 1 'the link points at no file' '`kernels/cpu/demo.cpp` and [next](no_such_page.md)'
expect "the line number is given" 1 'page.md:3:' 'line one `kernels/cpu/demo.cpp`' '' 'line three `kernels/gone.h`'
expect "fenced blocks are not read" 0 "all good" '`kernels/cpu/demo.cpp`' '```' '`kernels/cpu/missing.cpp`' '```'
expect "a code span across a line break fails" 1 'must not cross a line break' \
  'See `kernels/cpu/demo.cpp:' 'real_function` here.'
expect "a page without references fails" 1 'no references found' 'Only prose here.'

if [[ $failures -gt 0 ]]; then
  echo "test_check_doc_refs: $failures case(s) failed"
  exit 1
fi
echo "test_check_doc_refs: all cases behave"
