#!/usr/bin/env python3
"""A sequential baseline for the bench: Python's poplib, one maildrop after
another, STLS verified against a CA file, USER/PASS, every message RETRieved
one command at a time and written to OUT/USER-N with CRLF line endings.

    poplib_fetch.py HOST PORT CA_FILE PASSWORD OUT USER...
"""
import os
import poplib
import ssl
import sys


def main():
    host, port, ca_file, password, out = sys.argv[1:6]
    context = ssl.create_default_context(cafile=ca_file)
    for user in sys.argv[6:]:
        pop = poplib.POP3(host, int(port), timeout=120)
        pop.stls(context)
        pop.user(user)
        pop.pass_(password)
        count, _ = pop.stat()
        for n in range(1, count + 1):
            _, lines, _ = pop.retr(n)
            with open(os.path.join(out, f'{user}-{n}'), 'wb') as f:
                f.write(b'\r\n'.join(lines) + b'\r\n')
        pop.quit()


if __name__ == '__main__':
    main()
