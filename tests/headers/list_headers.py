#!/usr/bin/python3
"""Print the public headers of protocol/, tls/ and proxy/ under the source
root given as the argument, one per line, relative to it."""
import glob
import os
import sys

root = sys.argv[1]
found = []
for pattern in ("protocol/*.h", "tls/*.h", "proxy/**/*.h"):
    found += glob.glob(os.path.join(root, pattern), recursive=True)
print("\n".join(sorted(os.path.relpath(p, root) for p in found)))
