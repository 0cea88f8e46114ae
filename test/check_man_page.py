#!/usr/bin/env python3
"""Every --option pop3fetch's parser knows appears in its man page."""
import re
import sys

config, man = sys.argv[1], sys.argv[2]
with open(config, encoding='utf-8') as f:
    options = set(re.findall(r'"(--[a-z][a-z-]*)"', f.read()))
with open(man, encoding='utf-8') as f:
    page = f.read().replace('\\-', '-')
missing = sorted(o for o in options if o not in page)
if missing:
    print('not in the man page:', ' '.join(missing))
    sys.exit(1)
print(f'{len(options)} options, all in the man page')
