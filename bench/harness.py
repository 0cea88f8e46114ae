#!/usr/bin/env python3
"""The bench harness: pop3fetch and the POP3 clients users have today, side
by side against one private Dovecot, in one run.

Scenarios (messages log-normal around 4 KiB, 300 B - 2 MiB, unless said):
  one-big     1 maildrop x 5,000 messages
  many-small  200 maildrops x 20 messages
  huge        1 maildrop x 20 messages of 5 MiB
  swarm       10,000 maildrops x 10 messages (pop3fetch only)
each at 0 ms and 10 ms each way (a relay in front of Dovecot holds every
chunk for the delay, so every client sees the same round trip), and a sweep
of pop3fetch's pipeline depth (1, 4, 16, 64, 256, auto) on one-big.

Clients: pop3fetch (keep mode, Maildir), pop3fetch --pipeline 1, and the
peers that are installed: mpop (Maildir), fetchmail (BSMTP file), curl (one
file per message, URL globbing on one connection), Python's poplib (a
sequential baseline). All of them use STLS with the certificate verified
against the test CA, and a plaintext password inside TLS (USER or PLAIN), so
no one pays for SCRAM's PBKDF2. Output goes to tmpfs (/dev/shm when there),
so the disk is out of the comparison. Each client runs as a child process:
its wall time, CPU (user + system, its children included) and peak RSS come
from wait4(). Dovecot's CPU is measured over the same interval. Each client
runs --runs times (3), the clients taking turns, and the table shows the
median of each figure with the spread of the wall times (+-, half the range);
a client whose first run took over --repeat-under seconds (10) runs once.

Each scenario is fetched once, untimed, before the runs (Dovecot indexes a
maildrop at its first session). Every run is checked: the messages it stored must be exactly the ones in the
maildrops (an order-free digest of their bytes, LF line endings); a run that
fetched wrong bytes fails the bench, whatever its speed. A peer that exceeds
the time cap is stopped; the table says how far it got.

The floor of a run is the larger of (a) 8 round trips (greeting, CAPA, STLS,
TLS, CAPA, login, LIST+UIDL, the RETRs, QUIT: every maildrop at once, every
command pipelined) plus the bytes over the measured loopback bandwidth, and
(b) Dovecot's CPU time in that run over the cores it could use (one for a
single maildrop).

    harness.py --build BUILD_DIR [--out DIR] [--scale F] [--cap SECONDS]
               [--only SCENARIO,...] [--delays 0,10] [--no-peers] [--no-sweep]
               [--runs N] [--repeat-under SECONDS]
"""
import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

MiB = 1 << 20
DEPTHS = ['1', '4', '16', '64', '256', 'auto']


# ---------------------------------------------------------------- scenarios

def scenarios(scale):
    def n(x, least=1):
        return max(least, int(round(x * scale)))
    return [
        {'name': 'one-big', 'group': 'onebig', 'maildrops': 1, 'messages': n(5000, 20),
         'median': 4096, 'min': 300, 'max': 2 * MiB, 'sigma': 0.6, 'seed': 101, 'concurrency': 64},
        {'name': 'many-small', 'group': 'manysmall', 'maildrops': n(200, 4), 'messages': 20,
         'median': 4096, 'min': 300, 'max': 2 * MiB, 'sigma': 0.6, 'seed': 202, 'concurrency': 64},
        {'name': 'huge', 'group': 'huge', 'maildrops': 1, 'messages': n(20, 2),
         'median': 5 * MiB, 'min': 5 * MiB, 'max': 5 * MiB, 'sigma': 0.0, 'seed': 303, 'concurrency': 64},
        {'name': 'swarm', 'group': 'swarm', 'maildrops': n(10000, 20), 'messages': 10,
         'median': 4096, 'min': 300, 'max': 2 * MiB, 'sigma': 0.6, 'seed': 404, 'concurrency': 1000,
         'peers': False},
    ]


# ---------------------------------------------------------------- helpers

def digest_add(acc, data):
    return (acc + int.from_bytes(hashlib.sha256(data).digest()[:8], 'big')) % (1 << 64)


def to_lf(data):
    return data.replace(b'\r\n', b'\n')


def files_digest(directory, transform=to_lf):
    """Digest and count of every file under `directory`, recursively."""
    acc, count = 0, 0
    for root, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), 'rb') as f:
                acc = digest_add(acc, transform(f.read()))
            count += 1
    return acc, count


def bsmtp_digest(path):
    """Digest and count of the messages in a BSMTP file (fetchmail --bsmtp)."""
    acc, count = 0, 0
    if not os.path.exists(path):
        return acc, count
    with open(path, 'rb') as f:
        data = f.read()
    pos = 0
    while True:
        start = data.find(b'DATA\r\n', pos)
        if start < 0:
            break
        start += len(b'DATA\r\n')
        end = data.find(b'\r\n.\r\n', start - 2)
        if end < 0:
            break
        body = data[start:end + 2]
        lines = body.split(b'\r\n')
        body = b'\r\n'.join(l[1:] if l.startswith(b'.') else l for l in lines)
        acc = digest_add(acc, to_lf(body))
        count += 1
        pos = end + 5
    return acc, count


def tmpfs_root():
    for d in ('/dev/shm', tempfile.gettempdir()):
        if os.path.isdir(d) and os.access(d, os.W_OK):
            return d
    return tempfile.gettempdir()


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(text)


class Dovecot:
    """bench_dovecot_up, driven over its stdin."""

    def __init__(self, binary, scens, process_limit):
        args = [binary, '--process-limit', str(process_limit)]
        for s in scens:
            args += ['--group', ':'.join(str(x) for x in (
                s['group'], s['maildrops'], s['messages'], s['median'], s['min'], s['max'], s['sigma'], s['seed']))]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            status = self.proc.wait()
            if status == 3 and not os.environ.get('POP3_REQUIRE_DOVECOT'):
                print('bench: skipped: no Dovecot to run against (see above)')
                sys.exit(77)
            raise SystemExit('bench: the private Dovecot did not start (see above)')
        self.info = json.loads(line)
        self.relays = {}

    def ask(self, command):
        self.proc.stdin.write(command + '\n')
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def cpu(self):
        return self.ask('cpu')['server_cpu']

    def port(self, delay_ms):
        if delay_ms == 0:
            return self.info['plain_port']
        if delay_ms not in self.relays:
            self.relays[delay_ms] = self.ask(f'relay {delay_ms}')['relay_port']
        return self.relays[delay_ms]

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except Exception:
            self.proc.kill()


def run_measured(measure, argv, cap, env=None, log=None):
    """Runs a client under bench_measure: wall, CPU, peak RSS, status, and whether the cap stopped it."""
    proc = subprocess.run([measure, str(cap)] + argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=log or subprocess.DEVNULL, check=False)
    lines = proc.stdout.decode(errors='replace').strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SystemExit(f'bench: bench_measure failed for {argv[0]}')
    r = json.loads(lines[-1])
    r['rss_mb'] = r.pop('rss_kb') / 1024.0
    return r


# ---------------------------------------------------------------- clients

class Client:
    name = ''
    expects = 'digest_lf'
    pipelines = False

    def available(self):
        return True

    def prepare(self, work, scen, users, port, dv):
        """Returns argv (and env) for the run; output goes under `work`."""
        raise NotImplementedError

    def collect(self, work):
        return files_digest(os.path.join(work, 'out'))


class Pop3fetch(Client):
    def __init__(self, binary, depth='auto'):
        self.binary = binary
        self.depth = depth
        self.name = 'pop3fetch' if depth == 'auto' else f'pop3fetch --pipeline {depth}'
        self.pipelines = depth != '1'

    def available(self):
        return os.access(self.binary, os.X_OK)

    def prepare(self, work, scen, users, port, dv):
        accounts = os.path.join(work, 'accounts')
        with open(accounts, 'w') as f:
            for u in users:
                f.write(f'pop3://{u}@127.0.0.1:{port}\n')
        argv = [self.binary, '--accounts', accounts, '--keep', '--state', os.path.join(work, 'state'),
                '--maildir', os.path.join(work, 'out'), '--ca-file', dv.info['ca_file'],
                '--password-env', 'POP3_BENCH_PW', '--auth', 'plain', '--quiet', '--timeout', '120',
                '--concurrency', str(scen['concurrency']), '--pipeline', self.depth]
        return argv, dict(os.environ, POP3_BENCH_PW=dv.info['password'])


class Mpop(Client):
    name = 'mpop'
    pipelines = True

    def available(self):
        return shutil.which('mpop') is not None

    def prepare(self, work, scen, users, port, dv):
        out = os.path.join(work, 'out')
        for sub in ('cur', 'new', 'tmp'):
            os.makedirs(os.path.join(out, sub), exist_ok=True)
        rc = ['defaults', 'tls on', 'tls_starttls on', f"tls_trust_file {dv.info['ca_file']}", 'auth user',
              'keep on', 'only_new off', 'received_header off', 'pipelining auto',
              f"uidls_file {os.path.join(work, 'uidls')}", f'delivery maildir {out}', 'host 127.0.0.1',
              f'port {port}', f"password {dv.info['password']}"]
        for u in users:
            rc += [f'account {u}', f'user {u}']
        path = os.path.join(work, 'mpoprc')
        write_private(path, '\n'.join(rc) + '\n')
        return ['mpop', '-C', path, '-a', '-q'], None


class Fetchmail(Client):
    name = 'fetchmail'
    expects = 'digest_lf_no_return_path'  # it turns Return-Path into the envelope sender

    def available(self):
        return shutil.which('fetchmail') is not None

    def prepare(self, work, scen, users, port, dv):
        rc = ['set no syslog', f'poll 127.0.0.1 protocol pop3 port {port} auth password']
        for u in users:
            rc.append(f'  user "{u}" there with password "{dv.info["password"]}" is "root" here '
                      f'options keep fetchall no rewrite sslcertck sslcertfile "{dv.info["ca_file"]}" '
                      f'sslproto "auto" sslcommonname "localhost"')
        path = os.path.join(work, 'fetchmailrc')
        write_private(path, '\n'.join(rc) + '\n')
        argv = ['fetchmail', '-f', path, '--bsmtp', os.path.join(work, 'out.bsmtp'), '--invisible', '--nosyslog',
                '-i', os.path.join(work, 'fetchids'), '--pidfile', os.path.join(work, 'fetchmail.pid'), '-s']
        return argv, dict(os.environ, FETCHMAILHOME=work)

    def collect(self, work):
        return bsmtp_digest(os.path.join(work, 'out.bsmtp'))


class Curl(Client):
    name = 'curl'

    def available(self):
        return shutil.which('curl') is not None

    def prepare(self, work, scen, users, port, dv):
        out = os.path.join(work, 'out')
        os.makedirs(out, exist_ok=True)
        # One curl per maildrop; URL globbing fetches its messages one RETR
        # at a time over one connection.
        lines = ['set -e']
        for u in users:
            lines.append(f"curl -s --ssl-reqd --cacert '{dv.info['ca_file']}' --login-options AUTH=PLAIN "
                         f"-u '{u}:{dv.info['password']}' 'pop3://127.0.0.1:{port}/[1-{scen['messages']}]' "
                         f"-o '{out}/{u}-#1'")
        script = os.path.join(work, 'curl.sh')
        with open(script, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        return ['sh', script], None


class Poplib(Client):
    name = 'python poplib'

    def available(self):
        return True

    def prepare(self, work, scen, users, port, dv):
        out = os.path.join(work, 'out')
        os.makedirs(out, exist_ok=True)
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'peers', 'poplib_fetch.py')
        return [sys.executable, script, '127.0.0.1', str(port), dv.info['ca_file'], dv.info['password'], out] + \
            users, None


# ---------------------------------------------------------------- the run

def floor_seconds(scen, delay_ms, wire_bytes, bandwidth, server_cpu):
    rtt = 2 * delay_ms / 1000.0
    network = 8 * rtt + wire_bytes / bandwidth
    parallel = min(scen['maildrops'], os.cpu_count() or 1)
    return max(network, server_cpu / parallel)


def run_one(client, scen, delay_ms, dv, cap, bandwidth, scratch, log_dir, measure):
    group = dv.info['groups'][scen['group']]
    users = [f"{scen['group']}{i}" for i in range(group['maildrops'])]
    port = dv.port(delay_ms)
    work = tempfile.mkdtemp(prefix='pop3-bench-', dir=scratch)
    try:
        argv, env = client.prepare(work, scen, users, port, dv)
        log_path = os.path.join(log_dir, f"{scen['name']}-{delay_ms}ms-{client.name.replace(' ', '_')}.log")
        with open(log_path, 'wb') as log:
            cpu_before = dv.cpu()
            r = run_measured(measure, argv, cap, env=env, log=log)
            server_cpu = dv.cpu() - cpu_before
        digest, count = client.collect(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    expected_count = group['maildrops'] * group['messages_per_maildrop']
    wire = group['maildrops'] * group['wire_bytes_per_maildrop']
    r.update({'scenario': scen['name'], 'delay_ms': delay_ms, 'client': client.name, 'messages': count,
              'expected_messages': expected_count, 'server_cpu': server_cpu, 'wire_bytes': wire})
    if r['stopped']:
        r['verdict'] = 'stopped'
        r['correct'] = None
    else:
        r['correct'] = count == expected_count and f'{digest:016x}' == group[client.expects]
        r['verdict'] = 'ok' if r['correct'] else ('wrong bytes' if count == expected_count else
                                                  f'{count} of {expected_count} messages')
        if r['status'] != 0 and r['correct']:
            r['verdict'] = f"ok (exit {r['status']})"
    return derive(r, scen, bandwidth)


def derive(r, scen, bandwidth):
    """The figures computed from a run's wall, CPU and server CPU."""
    count, expected_count, wire = r['messages'], r['expected_messages'], r['wire_bytes']
    done_bytes = wire * (count / expected_count) if expected_count else 0
    r['msgs_per_s'] = count / r['wall'] if r['wall'] > 0 else 0
    r['mb_per_s'] = done_bytes / MiB / r['wall'] if r['wall'] > 0 else 0
    r['cpu_s_per_gb'] = r['cpu'] / (done_bytes / (1 << 30)) if done_bytes else None
    r['floor_s'] = floor_seconds(scen, r['delay_ms'], wire, bandwidth, r['server_cpu'])
    r['x_floor'] = r['wall'] / r['floor_s'] if r['floor_s'] > 0 and not r['stopped'] else None
    return r


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def combine(runs, scen, bandwidth):
    """One row from a client's repeated runs: the median wall time, CPU and
    server CPU (each the median of its own), the largest peak RSS; a wrong
    run makes the row wrong. Every run is kept under 'runs'."""
    bad = next((r for r in runs if r['correct'] is False or r['stopped']), None)
    row = dict(bad if bad is not None else sorted(runs, key=lambda r: r['wall'])[len(runs) // 2])
    row['runs'] = [{k: r[k] for k in ('wall', 'cpu', 'server_cpu', 'rss_mb', 'verdict')} for r in runs]
    if bad is None and len(runs) > 1:
        row['wall'] = median([r['wall'] for r in runs])
        row['cpu'] = median([r['cpu'] for r in runs])
        row['server_cpu'] = median([r['server_cpu'] for r in runs])
        row['rss_mb'] = max(r['rss_mb'] for r in runs)
        derive(row, scen, bandwidth)
    walls = [r['wall'] for r in runs]
    row['wall_spread'] = (max(walls) - min(walls)) / 2 / row['wall'] if len(runs) > 1 and row['wall'] > 0 else None
    return row


def fmt(v, spec):
    return '-' if v is None else format(v, spec)


def print_row(r, ref):
    wall = f"{r['wall']:.2f}" + ('+' if r['stopped'] else '')
    vs = '-'
    if ref and r is not ref and not r['stopped'] and r['messages']:
        vs = f"{r['wall'] / ref['wall']:.1f}x"
    # A stopped run's CPU and RSS miss what its killed children used.
    cpu = None if r['stopped'] else r['cpu_s_per_gb']
    rss = '-' if r['stopped'] else f"{r['rss_mb']:.1f}"
    spread = '-' if r.get('wall_spread') is None else f"{100 * r['wall_spread']:.0f}%"
    print(f"  {r['client']:<24} {wall:>8} {spread:>5} {r['msgs_per_s']:>9.0f} {r['mb_per_s']:>8.1f} "
          f"{fmt(cpu, '.1f'):>8} {rss:>7} {r['server_cpu']:>7.2f} "
          f"{fmt(r['x_floor'], '.1f'):>7} {vs:>8}  {r['verdict']}", flush=True)


HEADER = (f"  {'client':<24} {'wall s':>8} {'+-':>5} {'msg/s':>9} {'MB/s':>8} {'CPU s/GB':>8} {'RSS MB':>7} "
          f"{'srv CPU':>7} {'x floor':>7} {'vs ours':>8}  check")


def svg_plot(sweep, path):
    """Messages/s against pipeline depth, one line per delay."""
    w, h, left, right, top, bottom = 640, 400, 70, 20, 40, 50
    delays = sorted({r['delay_ms'] for r in sweep})
    best = max((r['msgs_per_s'] for r in sweep), default=1) or 1
    xs = {d: left + i * (w - left - right) / (len(DEPTHS) - 1) for i, d in enumerate(DEPTHS)}
    colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd']
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
           f'font-size="12">', f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">pop3fetch on one-big against '
           f'Dovecot: messages/s by pipeline depth</text>']
    for i in range(6):
        y = top + (h - top - bottom) * i / 5
        v = best * (1 - i / 5)
        out.append(f'<line x1="{left}" y1="{y}" x2="{w - right}" y2="{y}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{v:.0f}</text>')
    for d, x in xs.items():
        out.append(f'<text x="{x}" y="{h - bottom + 18}" text-anchor="middle">{d}</text>')
    out.append(f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">commands in flight per session</text>')
    for i, delay in enumerate(delays):
        pts = []
        for d in DEPTHS:
            for r in sweep:
                if r['delay_ms'] == delay and r['depth'] == d:
                    y = top + (h - top - bottom) * (1 - r['msgs_per_s'] / best)
                    pts.append(f'{xs[d]:.1f},{y:.1f}')
        c = colors[i % len(colors)]
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{" ".join(pts)}"/>')
        for p in pts:
            x, y = p.split(',')
            out.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{c}"/>')
        out.append(f'<text x="{w - right - 110}" y="{top + 16 + 16 * i}" fill="{c}">{delay} ms each way</text>')
    out.append('</svg>')
    with open(path, 'w') as f:
        f.write('\n'.join(out) + '\n')


def targets(results):
    """The issue's targets, each a line: met or missed, with the figures."""
    lines = []

    def find(scen, delay, client):
        for r in results:
            if r['scenario'] == scen and r['delay_ms'] == delay and r['client'] == client:
                return r
        return None

    for delay in sorted({r['delay_ms'] for r in results}):
        ours, mpop = find('one-big', delay, 'pop3fetch'), find('one-big', delay, 'mpop')
        if ours and mpop and not mpop['stopped']:
            ok = ours['wall'] <= mpop['wall'] and ours['cpu'] <= 0.5 * mpop['cpu']
            lines.append(f"one-big {delay} ms: as fast as mpop with at most half its CPU: "
                         f"{'met' if ok else 'MISSED'} (wall {ours['wall']:.2f} vs {mpop['wall']:.2f} s, "
                         f"CPU {ours['cpu']:.2f} vs {mpop['cpu']:.2f} s)")
        ours = find('many-small', delay, 'pop3fetch')
        peers = [r for r in results if r['scenario'] == 'many-small' and r['delay_ms'] == delay and
                 not r['client'].startswith('pop3fetch')]
        if ours and peers:
            fastest = min(peers, key=lambda r: r['wall'] if not r['stopped'] else float('inf'))
            want = 3 if delay == 0 else 10
            ratio = fastest['wall'] / ours['wall']
            bound = '>=' if fastest['stopped'] else ''
            lines.append(f"many-small {delay} ms: at least {want}x faster than the fastest peer: "
                         f"{'met' if ratio >= want else 'MISSED'} ({bound}{ratio:.1f}x, {fastest['client']} "
                         f"{fastest['wall']:.2f} s{' (stopped)' if fastest['stopped'] else ''} vs "
                         f"{ours['wall']:.2f} s)")
        ours, mpop = find('huge', delay, 'pop3fetch'), find('huge', delay, 'mpop')
        if ours and mpop and not mpop['stopped']:
            big = find('one-big', delay, 'pop3fetch')
            ok = ours['mb_per_s'] >= mpop['mb_per_s'] and ours['cpu'] <= 0.5 * mpop['cpu']
            flat = f", RSS {ours['rss_mb']:.0f} MB" + (f" (one-big: {big['rss_mb']:.0f} MB)" if big else '')
            lines.append(f"huge {delay} ms: at least mpop's MB/s with at most half its CPU: "
                         f"{'met' if ok else 'MISSED'} ({ours['mb_per_s']:.0f} vs {mpop['mb_per_s']:.0f} MB/s, "
                         f"CPU {ours['cpu']:.2f} vs {mpop['cpu']:.2f} s{flat})")
        ours = find('swarm', delay, 'pop3fetch')
        if ours:
            lines.append(f"swarm {delay} ms: {ours['expected_messages']} messages from "
                         f"{ours['expected_messages'] // 10} maildrops: "
                         f"{'finished' if ours['correct'] else ours['verdict']} in {ours['wall']:.2f} s, "
                         f"client peak RSS {ours['rss_mb']:.0f} MB")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--build', required=True, help='the meson build directory (bench and pop3fetch built)')
    ap.add_argument('--out', default='bench-results', help='where results.json and the plot go')
    ap.add_argument('--scale', type=float, default=1.0, help='multiplies the scenarios\' counts')
    ap.add_argument('--cap', type=float, default=60.0, help='seconds after which a client is stopped')
    ap.add_argument('--only', default='', help='comma-separated scenarios to run')
    ap.add_argument('--delays', default='0,10', help='comma-separated one-way delays in ms')
    ap.add_argument('--no-peers', action='store_true', help='pop3fetch alone')
    ap.add_argument('--no-sweep', action='store_true', help='skip the pipeline-depth sweep')
    ap.add_argument('--runs', type=int, default=3,
                    help='runs of each client, taken in turn; the table shows the median (default 3)')
    ap.add_argument('--repeat-under', type=float, default=10.0,
                    help='a client whose first run took longer than this many seconds runs once')
    args = ap.parse_args()

    raise_fd_limit()
    os.makedirs(args.out, exist_ok=True)
    log_dir = os.path.join(args.out, 'logs')
    os.makedirs(log_dir, exist_ok=True)
    scens = [s for s in scenarios(args.scale) if not args.only or s['name'] in args.only.split(',')]
    delays = [float(d) if '.' in d else int(d) for d in args.delays.split(',') if d != '']
    pop3fetch = os.path.join(args.build, 'tools', 'pop3fetch')
    dovecot_up = os.path.join(args.build, 'bench', 'bench_dovecot_up')
    measure = os.path.join(args.build, 'bench', 'bench_measure')
    for b in (pop3fetch, dovecot_up, measure):
        if not os.access(b, os.X_OK):
            raise SystemExit(f'bench: {b} is not built')

    process_limit = max(512, max(min(s['concurrency'], s['maildrops']) for s in scens) + 24)
    t0 = time.monotonic()
    dv = Dovecot(dovecot_up, scens, process_limit)
    results, sweep, failures = [], [], []
    try:
        bandwidth = dv.ask('bandwidth')['loopback_bytes_per_s']
        print(f"Dovecot {dv.info['version']} on loopback; maildrops seeded in {dv.info['seed_seconds']:.1f} s; "
              f"loopback {bandwidth / 1e9:.2f} GB/s; {os.cpu_count()} cores; output on {tmpfs_root()}; "
              f"peers stopped after {args.cap:.0f} s", flush=True)
        peers = [] if args.no_peers else [Mpop(), Fetchmail(), Curl(), Poplib()]
        missing = [p.name for p in peers if not p.available()]
        peers = [p for p in peers if p.available()]
        if missing:
            print(f"peers not installed, skipped: {', '.join(missing)}", flush=True)
        scratch = tmpfs_root()
        for scen in scens:
            for delay in delays:
                group = dv.info['groups'][scen['group']]
                print(f"\n{scen['name']}: {group['maildrops']} maildrop(s) x {group['messages_per_maildrop']} "
                      f"messages, {group['maildrops'] * group['wire_bytes_per_maildrop'] / MiB:.1f} MiB, "
                      f"{delay} ms each way", flush=True)
                print(HEADER, flush=True)
                clients = [Pop3fetch(pop3fetch), Pop3fetch(pop3fetch, '1')]
                if scen.get('peers', True):
                    clients += peers
                elif peers:
                    print('  (peers skipped: they poll one maildrop after another)', flush=True)
                if delay == delays[0]:
                    # Untimed: Dovecot builds its index of each maildrop at
                    # the first session; no client should pay for that.
                    warm = run_one(Pop3fetch(pop3fetch), scen, 0, dv, args.cap, bandwidth, scratch, log_dir, measure)
                    if warm['correct'] is False:
                        failures.append(f"{scen['name']} warm-up: {warm['verdict']}")
                # The clients take turns, run after run, so that a machine
                # growing busier or quieter weighs on all of them alike.
                runs = {c.name: [] for c in clients}
                for _ in range(max(1, args.runs)):
                    for c in clients:
                        done = runs[c.name]
                        if done and (done[0]['stopped'] or done[0]['correct'] is False or
                                     done[0]['wall'] > args.repeat_under):
                            continue
                        r = run_one(c, scen, delay, dv, args.cap, bandwidth, scratch, log_dir, measure)
                        done.append(r)
                        if r['correct'] is False:
                            failures.append(f"{scen['name']} {delay} ms {c.name}: {r['verdict']}")
                ref = None
                for c in clients:
                    r = combine(runs[c.name], scen, bandwidth)
                    if c.name == 'pop3fetch':
                        ref = r
                    results.append(r)
                    print_row(r, ref)
                if scen['name'] == 'one-big' and not args.no_sweep:
                    print(f"  depth sweep ({delay} ms):", flush=True)
                    for d in DEPTHS:
                        r = next((x for x in results if x['scenario'] == 'one-big' and x['delay_ms'] == delay and
                                  x['client'] == Pop3fetch(pop3fetch, d).name), None)
                        if r is None:
                            r = combine([run_one(Pop3fetch(pop3fetch, d), scen, delay, dv, args.cap, bandwidth,
                                                 scratch, log_dir, measure)], scen, bandwidth)
                            print_row(r, ref)
                            if r['correct'] is False:
                                failures.append(f"one-big {delay} ms depth {d}: {r['verdict']}")
                        sweep.append(dict(r, depth=d))
    finally:
        dv.close()

    print('\nTargets (measured in this run):')
    target_lines = targets(results)
    for line in target_lines:
        print('  ' + line)
    summary = {'dovecot': dv.info['version'], 'cores': os.cpu_count(), 'scale': args.scale, 'cap_s': args.cap,
               'runs': args.runs,
               'loopback_bytes_per_s': bandwidth, 'results': results, 'depth_sweep': sweep,
               'targets': target_lines, 'failures': failures, 'seconds': time.monotonic() - t0}
    with open(os.path.join(args.out, 'results.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    if sweep:
        svg_plot(sweep, os.path.join(args.out, 'depth.svg'))
    print(f"\nwrote {os.path.join(args.out, 'results.json')}" +
          (f" and {os.path.join(args.out, 'depth.svg')}" if sweep else '') +
          f"; {time.monotonic() - t0:.0f} s in all")
    if failures:
        print('\nWRONG RESULTS:\n  ' + '\n  '.join(failures))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
