"""A zip archive listing a huge directory is refused by csae.load in memory
independent of the directory's size (zipfile alone builds an object per
entry: about 500 bytes each, before anything can be refused), and by the C
reader without reading the entries."""

import os
import struct
import subprocess
import sys
import zlib

from libcsae_ctypes import Reader
from test_c_api import ROOT

ENTRIES = 300_000


def many_entries(path, n):
    """A valid zip of n empty members (zip64 end records when n needs them)."""
    local, central = bytearray(), bytearray()
    crc = zlib.crc32(b"")
    for i in range(n):
        name = b"m%07d.npy" % i
        offset = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, 0, 0,
                             len(name), 0) + name
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, crc, 0, 0,
                               len(name), 0, 0, 0, 0, 0, offset) + name
    end = bytes(local + central)
    z64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(central),
                      len(local))
    locator = struct.pack("<IIQI", 0x07064B50, 0, len(end), 1)
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, len(central), len(local), 0)
    path.write_bytes(end + z64 + locator + eocd)


PROGRAM = r"""
import resource, sys
import csae
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    csae.load(sys.argv[1])
except ValueError as err:
    print(err)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_huge_directory_is_refused_in_bounded_memory(tmp_path):
    path = tmp_path / "huge.npz"
    many_entries(path, ENTRIES)
    assert os.path.getsize(path) > 20_000_000
    run = subprocess.run([sys.executable, "-c", PROGRAM, str(path)], capture_output=True,
                         text=True, cwd=ROOT, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert run.returncode == 0, run.stderr[-3000:]
    message, grown_mb = run.stdout.strip().splitlines()
    assert "not a valid csae model file" in message and f"lists {ENTRIES} members" in message
    # zipfile alone would grow by ~150 MB here.
    assert int(grown_mb) < 40, run.stdout
    assert Reader().info(path)[0] == "CSAE_ERR_FORMAT"
