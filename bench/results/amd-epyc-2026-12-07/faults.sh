#!/bin/bash
# Usage: faults.sh path/to/compare_worker <compare_worker args>   (docs/cpu_kernels.md, host block cache)
# faults.sh BINARY args... : page faults during the second step (after one warm-up step), one thread
B=$1; shift
F=/tmp/ab/fifo.f.$$; O=/tmp/ab/out.f.$$
mkfifo $F
OMP_NUM_THREADS=1 $B "$@" < $F > $O &
PID=$!
exec 3>$F
until [ -s $O ]; do sleep 0.5; done
echo step >&3; until [ $(wc -l < $O) -ge 2 ]; do sleep 0.5; done
perf stat -e page-faults -p $PID -o /tmp/ab/pf.$$ &
PP=$!
sleep 0.5
echo step >&3; until [ $(wc -l < $O) -ge 3 ]; do sleep 0.5; done
kill -INT $PP; wait $PP
echo quit >&3; exec 3>&-; wait $PID
echo "$B: $(tail -1 $O) $(grep page-faults /tmp/ab/pf.$$)"
rm -f $F $O /tmp/ab/pf.$$
