#!/usr/bin/env python3
"""Reads meson's test logs and prints the closing line: N passed, N failed.

A build directory without a test log (its build failed) counts as one
failure, so a broken build can never look green. Exits 1 on any failure.
"""
import json
import os
import sys

passed = failed = skipped = 0
for build in sys.argv[1:]:
    log = os.path.join(build, 'meson-logs', 'testlog.json')
    if not os.path.exists(log):
        print(f'{build}: no test log (the build failed)')
        failed += 1
        continue
    with open(log, encoding='utf-8') as f:
        for line in f:
            if not line.strip():
                continue
            result = json.loads(line)['result']
            if result in ('OK', 'EXPECTEDFAIL'):
                passed += 1
            elif result == 'SKIP':
                skipped += 1
            else:
                failed += 1
                print(f"{build}: {json.loads(line)['name']}: {result}")
if skipped:
    print(f'{skipped} skipped')
print(f'{passed} passed, {failed} failed')
sys.exit(1 if failed else 0)
