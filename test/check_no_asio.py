#!/usr/bin/env python3
"""Fails when a file of the sans-I/O protocol core includes Asio or Beast."""
import re
import sys

pattern = re.compile(r'^\s*#\s*include\s*[<"]boost/(asio|beast)', re.MULTILINE)
bad = [path for path in sys.argv[1:] if pattern.search(open(path, encoding='utf-8').read())]
for path in bad:
    print(f'{path}: the protocol core must not include Asio or Beast')
print(f'checked {len(sys.argv) - 1} files of the protocol core')
sys.exit(1 if bad else 0)
