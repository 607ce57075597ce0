#!/usr/bin/env bash
# Checks the code references in markdown pages (docs/internals/ by default; CMake runs it as the ctest test
# check_doc_refs). The reference syntax, documented at the top of docs/internals/README.md:
#   `kernels/cpu/conv2d.cpp`                          a file (or `kernels/cuda/`, a folder) that must exist
#   `kernels/cpu/conv2d.cpp: conv2d_forward_plain`    ... and a symbol that must occur in it as a whole word
#   `tensor/tensor.cpp: Tensor::transpose, Tensor::view`   several symbols, comma-separated
# A reference is any inline code span that starts with a top-level folder of the project (tensor/, kernels/, ...)
# or names a top-level file (CMakeLists.txt, Makefile, README.md). Spans with a <placeholder> (`kernels/<op>.h`)
# are patterns and are not checked; fenced code blocks (program output, commands) are not read. Relative markdown
# links ([text](02_autograd.md)) must point at a file that exists. A code span must start and end on one line.
# Every bad reference is one line "page:line: `reference`: what is wrong"; the exit status is 1 if there was any,
# or if no reference was found at all (a page set that checks nothing proves nothing).
#
# usage: tools/check_doc_refs.sh [--root DIR] [PAGE.md | FOLDER]...   (DIR: what references are relative to,
#        default the repository root; FOLDER: every *.md below it; default docs/internals under DIR)
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
if [[ "${1:-}" == "--root" ]]; then
  [[ $# -ge 2 && -d "$2" ]] || { echo "check_doc_refs: --root needs an existing folder" >&2; exit 2; }
  root="$(cd "$2" && pwd)"
  shift 2
fi
[[ $# -gt 0 ]] || set -- "$root/docs/internals"

top_dirs='tensor|kernels|autograd|nn|models|data|apps|bench|tests|tools|docs|examples|fuzz'
top_files='CMakeLists.txt|Makefile|README.md'
ref_re="^(($top_dirs)/[A-Za-z0-9_./-]*|$top_files)(: ([A-Za-z_~][A-Za-z0-9_:~]*(, [A-Za-z_~][A-Za-z0-9_:~]*)*))?\$"

pages=()
for arg in "$@"; do
  if [[ -d "$arg" ]]; then
    while IFS= read -r f; do pages+=("$f"); done < <(find "$arg" -name '*.md' -type f | LC_ALL=C sort)
  elif [[ -f "$arg" ]]; then
    pages+=("$arg")
  else
    echo "check_doc_refs: $arg: no such page or folder" >&2
    exit 2
  fi
done

bad=0
checked=0
fail() {  # page line span message
  echo "$1:$2: \`$3\`: $4"
  bad=$((bad + 1))
}

# Prints "line<TAB>kind<TAB>text" for every inline code span (kind c) and link target (kind l) outside fences.
extract() {
  awk '
    /^[ \t]*(```|~~~)/ { fenced = !fenced; next }
    fenced { next }
    {
      line = $0
      if (gsub(/`/, "`", line) % 2) printf "%d\tx\t%s\n", NR, substr($0, 1, 60)
      # Code spans first; they are removed so a link inside one is not read as a link.
      rest = ""
      while (match(line, /`[^`]+`/)) {
        printf "%d\tc\t%s\n", NR, substr(line, RSTART + 1, RLENGTH - 2)
        rest = rest substr(line, 1, RSTART - 1) " "
        line = substr(line, RSTART + RLENGTH)
      }
      line = rest line
      while (match(line, /\]\([^) \t]+\)/)) {
        printf "%d\tl\t%s\n", NR, substr(line, RSTART + 2, RLENGTH - 3)
        line = substr(line, RSTART + RLENGTH)
      }
    }' "$1"
}

for page in "${pages[@]}"; do
  page_dir="$(dirname "$page")"
  while IFS=$'\t' read -r line kind text; do
    if [[ "$kind" == x ]]; then
      fail "$page" "$line" "$text" "a code span must not cross a line break (the check reads one line at a time)"
      continue
    fi
    if [[ "$kind" == l ]]; then
      case "$text" in http://* | https://* | mailto:* | \#*) continue ;; esac
      target="${text%%#*}"
      checked=$((checked + 1))
      [[ -e "$page_dir/$target" ]] || fail "$page" "$line" "$text" "the link points at no file ($page_dir/$target)"
      continue
    fi
    # Only spans that start like a project path are references.
    [[ "$text" =~ ^(($top_dirs)/|($top_files)([^A-Za-z0-9_.]|$)) ]] || continue
    [[ "$text" == *"<"* ]] && continue  # a pattern such as kernels/cpu/<op>.cpp
    checked=$((checked + 1))
    if [[ ! "$text" =~ $ref_re ]]; then
      fail "$page" "$line" "$text" "not a reference: write \`path\` or \`path: symbol[, symbol]\` (one space after the colon)"
      continue
    fi
    path="${BASH_REMATCH[1]}"
    symbols="${BASH_REMATCH[4]}"
    if [[ "$path" == *..* || ! -e "$root/$path" ]]; then
      fail "$page" "$line" "$text" "no file or folder $path"
      continue
    fi
    [[ -n "$symbols" ]] || continue
    if [[ -d "$root/$path" ]]; then
      fail "$page" "$line" "$text" "$path is a folder; name a file to name a symbol"
      continue
    fi
    IFS=',' read -ra syms <<< "$symbols"
    for sym in "${syms[@]}"; do
      sym="${sym# }"
      grep -qwF -- "$sym" "$root/$path" || fail "$page" "$line" "$text" "no symbol $sym in $path"
    done
  done < <(extract "$page")
done

if [[ $checked -eq 0 ]]; then
  echo "check_doc_refs: no references found in ${pages[*]:-nothing} (nothing was checked)"
  exit 1
fi
if [[ $bad -gt 0 ]]; then
  echo "check_doc_refs: $bad of $checked references are bad"
  exit 1
fi
echo "check_doc_refs: $checked references in ${#pages[@]} pages, all good"
