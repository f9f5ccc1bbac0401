#!/usr/bin/env python3
"""Scans a running process's memory for the secrets of given private keys.

Usage:
    keyscan.py [--all] [--little-endian] PID KEYS...
    keyscan.py --self-test

KEYS are PEM files or directories; a directory is searched recursively for files that
hold an unencrypted PEM private key (PKCS#8 "PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY" or
SEC1 "EC PRIVATE KEY"; RSA and EC). The same key reached by two paths (a symlink and
its target) counts once. For each key the scanner looks for:

    p    RSA: the prime p; the big-endian bytes of the DER INTEGER, without its sign byte
    d    RSA: the private exponent d; EC: the private scalar (same byte form)
    pem  base64 lines of the PEM that encode secret bytes (at most 4 per key, spread
         over the secret part), counted one by one and summed

--little-endian also counts p and d byte-reversed, the order in which bignum libraries
(OpenSSL, BoringSSL, aws-lc) keep them in their limbs on little-endian machines.

Every readable mapping of /proc/PID/maps is read through /proc/PID/mem (root, or a
process the caller may ptrace), except [vvar] and [vsyscall]. Occurrences are counted
exactly within each mapping; one that spans two mappings is not seen.

Output: one row per key with at least one occurrence (every key with --all): the key's
path, the counts and the kinds of mapping they were found in ("heap", "stack", "anon",
or the mapped file's name). The last line is always

    found F of K keys in pid PID (M MiB scanned)

Exit status: 0 when nothing was found, 1 when material of at least one key was found,
2 on a usage error, an unreadable key or an unreadable process.

--self-test starts two small Python processes, one holding a generated RSA key's PEM and
DER and one holding an EC key's, and checks that each key is found in its holder only
(needs the openssl command). Exits 0 when the scanner works.

Python 3 standard library only.
"""

import base64
import os
import re
import subprocess
import sys
import tempfile

PEM_BLOCK = re.compile(
    rb"-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----\r?\n(.*?)-----END \1-----",
    re.DOTALL,
)
OID_RSA = bytes.fromhex("2a864886f70d010101")
OID_EC = bytes.fromhex("2a8648ce3d0201")
# Aligned 8-byte words of memory are looked up in an index of every 8-byte window of
# every needle: any occurrence of a needle of at least 15 bytes contains one aligned word.
WORD = 8
PEM_LINES_PER_KEY = 4
SKIPPED_MAPPINGS = ("[vvar]", "[vvar_vclock]", "[vsyscall]")


class ScanError(Exception):
    """A problem that stops the scan: bad input or an unreadable process."""


# --- DER ---------------------------------------------------------------------------


def der_read(data, pos):
    """Reads one DER TLV at pos: (tag, content start, content end)."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def der_children(data, start, end):
    """The (tag, content start, content end) of each element inside a constructed value."""
    children = []
    pos = start
    while pos < end:
        tag, cstart, cend = der_read(data, pos)
        children.append((tag, cstart, cend))
        pos = cend
    return children


def magnitude(data, start, end):
    """An INTEGER's content without its leading sign byte(s): (bytes, offset)."""
    while end - start > 1 and data[start] == 0:
        start += 1
    return data[start:end], start


class Secrets:
    """What to look for of one key, with the span of its DER that is secret."""

    def __init__(self, kind, p, d, secret_start, secret_end):
        self.kind = kind
        self.p = p
        self.d = d
        self.secret_start = secret_start
        self.secret_end = secret_end


def rsa_secrets(der, start, end):
    fields = der_children(der, start, end)
    if len(fields) < 6 or any(tag != 0x02 for tag, _, _ in fields[:6]):
        raise ValueError("not an RSAPrivateKey")
    d, d_at = magnitude(der, fields[3][1], fields[3][2])
    p, _ = magnitude(der, fields[4][1], fields[4][2])
    # Everything from d on (d, p, q, the CRT values) is secret; n and e before it are not.
    return Secrets("rsa", p, d, d_at, end)


def ec_secrets(der, start, end):
    fields = der_children(der, start, end)
    if len(fields) < 2 or fields[1][0] != 0x04:
        raise ValueError("not an ECPrivateKey")
    scalar, at = magnitude(der, fields[1][1], fields[1][2])
    return Secrets("ec", None, scalar, at, fields[1][2])


def key_secrets(label, der):
    """Finds p, d and the secret span in a PKCS#8, PKCS#1 or SEC1 key."""
    tag, start, end = der_read(der, 0)
    if tag != 0x30:
        raise ValueError("not a DER SEQUENCE")
    if label == b"RSA PRIVATE KEY":
        return rsa_secrets(der, start, end)
    if label == b"EC PRIVATE KEY":
        return ec_secrets(der, start, end)
    fields = der_children(der, start, end)
    if len(fields) < 3 or fields[1][0] != 0x30 or fields[2][0] != 0x04:
        raise ValueError("not a PKCS#8 PrivateKeyInfo")
    algorithm = der_children(der, fields[1][1], fields[1][2])
    oid = der[algorithm[0][1] : algorithm[0][2]]
    _, inner_start, inner_end = der_read(der, fields[2][1])
    if oid == OID_RSA:
        return rsa_secrets(der, inner_start, inner_end)
    if oid == OID_EC:
        return ec_secrets(der, inner_start, inner_end)
    raise ValueError("unsupported key algorithm (RSA and EC only)")


# --- keys --------------------------------------------------------------------------


class Key:
    """One private key and the byte strings (needles) that betray it."""

    def __init__(self, path, secrets, pem_lines):
        self.path = path
        self.secrets = secrets
        self.needles = []  # (kind, bytes)
        if secrets.p is not None:
            self.needles.append(("p", secrets.p))
        self.needles.append(("d", secrets.d))
        self.needles.extend(("pem", line) for line in pem_lines)
        self.counts = {}
        self.places = set()

    def add_little_endian(self):
        if self.secrets.p is not None:
            self.needles.append(("p-le", self.secrets.p[::-1]))
        self.needles.append(("d-le", self.secrets.d[::-1]))

    def found(self):
        return sum(self.counts.values()) > 0


def secret_pem_lines(base64_lines, secrets):
    """Up to PEM_LINES_PER_KEY full base64 lines that encode at least 12 secret bytes."""
    chosen = []
    offset = 0  # DER offset of the line's first byte
    for line in base64_lines:
        decoded = len(line) * 3 // 4
        overlap = min(offset + decoded, secrets.secret_end) - max(offset, secrets.secret_start)
        if overlap >= 12 and len(line) >= 2 * WORD:
            chosen.append(line)
        offset += decoded
    if len(chosen) > PEM_LINES_PER_KEY:
        step = (len(chosen) - 1) / (PEM_LINES_PER_KEY - 1)
        chosen = [chosen[round(i * step)] for i in range(PEM_LINES_PER_KEY)]
    return chosen


def keys_in_file(path):
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise ScanError(f"cannot read key file {path}: {e.strerror}") from e
    keys = []
    for match in PEM_BLOCK.finditer(text):
        label = match.group(1)
        if label == b"ENCRYPTED PRIVATE KEY":
            raise ScanError(f"{path}: encrypted private keys are not supported")
        lines = [line.strip() for line in match.group(2).splitlines() if line.strip()]
        try:
            der = base64.b64decode(b"".join(lines), validate=True)
            secrets = key_secrets(label, der)
        except (ValueError, IndexError) as e:
            raise ScanError(f"{path}: cannot parse the private key: {e}") from e
        keys.append(Key(path, secrets, secret_pem_lines(lines, secrets)))
    return keys


def candidate_files(root):
    if os.path.isfile(root):
        yield root
        return
    if not os.path.isdir(root):
        raise ScanError(f"no such file or directory: {root}")
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            yield os.path.join(folder, name)


def load_keys(roots):
    """Every distinct private key under the given files and directories."""
    keys, seen = [], set()
    for root in roots:
        explicit = os.path.isfile(root)
        for path in candidate_files(root):
            if not explicit and not looks_like_pem_key(path):
                continue
            for key in keys_in_file(path):
                if key.secrets.d not in seen:
                    seen.add(key.secrets.d)
                    keys.append(key)
    return keys


def looks_like_pem_key(path):
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return b"PRIVATE KEY-----" in head


# --- memory ------------------------------------------------------------------------


def build_index(keys):
    """Maps every 8-byte window of every needle (as a native word) to its needles."""
    index = {}
    for key in keys:
        for kind, needle in key.needles:
            entry = (key, kind, needle)
            for i in range(len(needle) - WORD + 1):
                word = int.from_bytes(needle[i : i + WORD], sys.byteorder)
                index.setdefault(word, []).append(entry)
    return index


def readable_mappings(pid):
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ScanError(f"cannot read the mappings of pid {pid}: {e.strerror}") from e
    for line in lines:
        parts = line.split(None, 5)
        start, end = (int(x, 16) for x in parts[0].split("-"))
        name = parts[5] if len(parts) > 5 else ""
        if parts[1][0] != "r" or name in SKIPPED_MAPPINGS:
            continue
        yield start, end, place_of(name)


def place_of(name):
    if name == "":
        return "anon"
    if name.startswith("["):
        return name.strip("[]").split(":")[0]
    return os.path.basename(name.split(" (deleted)")[0])


def scan(pid, keys):
    """Counts every needle of every key in the process's memory; returns bytes read."""
    index = build_index(keys)
    words = index.keys()
    total = 0
    try:
        mem = open(f"/proc/{pid}/mem", "rb", buffering=0)
    except OSError as e:
        raise ScanError(f"cannot open the memory of pid {pid}: {e.strerror}") from e
    with mem:
        for start, end, place in readable_mappings(pid):
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, OverflowError):
                continue  # a mapping that cannot be read (e.g. a device): nothing to find
            if not data:
                continue
            total += len(data)
            usable = len(data) - len(data) % WORD
            hits = words & memoryview(data)[:usable].cast("Q")
            checked = set()
            for word in hits:
                for key, kind, needle in index[word]:
                    if (id(key), kind, needle) in checked:
                        continue
                    checked.add((id(key), kind, needle))
                    count = data.count(needle)
                    if count:
                        key.counts[kind] = key.counts.get(kind, 0) + count
                        key.places.add(place)
    return total


# --- report ------------------------------------------------------------------------


def report(pid, keys, scanned, show_all, kinds):
    rows = [key for key in keys if show_all or key.found()]
    if rows:
        width = max(len(key.path) for key in rows)
        print(f"{'key':<{width}}  " + "  ".join(f"{k:>4}" for k in kinds) + "  where")
        for key in rows:
            cells = "  ".join(f"{key.counts.get(k, 0):>4}" for k in kinds)
            print(f"{key.path:<{width}}  {cells}  {','.join(sorted(key.places)) or '-'}")
    found = sum(1 for key in keys if key.found())
    print(f"found {found} of {len(keys)} keys in pid {pid} ({scanned / 1048576:.1f} MiB scanned)")
    return found


def run_scan(pid, roots, show_all, little_endian):
    keys = load_keys(roots)
    if not keys:
        raise ScanError("no PEM private key found under " + " ".join(roots))
    kinds = ["p", "d", "pem"]
    if little_endian:
        kinds += ["p-le", "d-le"]
        for key in keys:
            key.add_little_endian()
    scanned = scan(pid, keys)
    return 1 if report(pid, keys, scanned, show_all, kinds) else 0


# --- self-test ---------------------------------------------------------------------

HOLDER = (
    "import base64, sys\n"
    "text = open(sys.argv[1], 'rb').read()\n"
    "body = b''.join(l for l in text.splitlines() if not l.startswith(b'-----'))\n"
    "der = base64.b64decode(body)\n"
    "print('ready', flush=True)\n"
    "sys.stdin.read()\n"
)


def start_holder(path):
    """A process that keeps one key file's PEM text and decoded DER in memory."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    if holder.stdout.readline().strip() != "ready":
        holder.kill()
        raise ScanError("the self-test holder process did not start")
    return holder


def self_test():
    with tempfile.TemporaryDirectory() as folder:
        rsa = os.path.join(folder, "rsa.pem")
        ec = os.path.join(folder, "ec.pem")
        for args in (["genrsa", "-out", rsa, "2048"], ["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", ec]):
            subprocess.run(["openssl", *args], check=True, capture_output=True)
        holders = {path: start_holder(path) for path in (rsa, ec)}
        failures = []
        try:
            for key_path in (rsa, ec):
                for holder_path, holder in holders.items():
                    keys = load_keys([key_path])
                    scan(holder.pid, keys)
                    key = keys[0]
                    expected = key_path == holder_path
                    needed = ["d", "pem"] + (["p"] if key.secrets.kind == "rsa" else [])
                    got = all(key.counts.get(k, 0) > 0 for k in needed) if expected else not key.found()
                    what = f"{os.path.basename(key_path)} in the holder of {os.path.basename(holder_path)}"
                    verdict = "found" if key.found() else "not found"
                    print(f"{'ok  ' if got else 'FAIL'} {what}: {verdict} {dict(sorted(key.counts.items()))}")
                    if not got:
                        failures.append(what)
        finally:
            for holder in holders.values():
                holder.kill()
                holder.wait()
    print("self-test " + ("FAILED" if failures else "passed"))
    return 1 if failures else 0


def main(argv):
    args = list(argv)
    if args == ["--self-test"]:
        return self_test()
    show_all = "--all" in args
    little_endian = "--little-endian" in args
    args = [a for a in args if a not in ("--all", "--little-endian")]
    if len(args) < 2 or not args[0].isdigit() or any(a.startswith("--") for a in args):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    return run_scan(int(args[0]), args[1:], show_all, little_endian)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ScanError as e:
        print(f"keyscan: {e}", file=sys.stderr)
        sys.exit(2)
