#!/bin/sh
# A one-shot job for tests/imagekit/e2e/test_run_jobs.py: what it does depends on $JOB_ID, so several
# jobs of one run can each play a part. Checks print "check: ..." lines the test reads.
set -u
case "$JOB_ID" in
ok-*)
    echo "check: user=$(id -un) dir=$(pwd) job=$JOB_ID"
    echo "check: data=$(cat data/input.txt) mode=$(stat -c %a data/tool.sh)"
    echo "check: nonewprivs=$(awk '/^NoNewPrivs/ {print $2}' /proc/self/status)"
    touch /opt/openclaw/escaped 2>/dev/null && echo "check: wrote-outside" || echo "check: read-only-outside"
    ls /proc | grep -qx 1 && echo "check: sees-pid1" || echo "check: pid1-hidden"
    echo "to stderr" >&2
    mkdir -p outputs/nested
    echo "result of $JOB_ID" > outputs/result.txt
    ./data/tool.sh > outputs/nested/tool.out
    ln -s result.txt outputs/latest
    ;;
fail-*)
    [ "${JOB_SECRET:-}" = "$(printf 'hunter2 "quoted" $HOME')" ] && echo "check: secret-in-environment"
    exit 7
    ;;
evil-link) mkdir -p outputs && echo x > outputs/fine.txt && ln -s /etc outputs/etc ;;
evil-dotdot) mkdir -p outputs/sub && echo x > outputs/fine.txt && ln -s ../../.. outputs/sub/up ;;
evil-big) head -c 3000000 /dev/zero > outputs/big ;;
slow-*) echo "check: started"; exec sleep 600 ;;
*) echo "unknown job $JOB_ID" >&2; exit 2 ;;
esac
