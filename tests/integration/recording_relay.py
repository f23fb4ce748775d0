"""A TCP relay on 127.0.0.1 that records the first bytes of every
connection it relays, run as a process of its own:

    python3 recording_relay.py TARGET_PORT OUT_DIR

It prints the port it listens on, then relays each connection to
127.0.0.1:TARGET_PORT; with TARGET_PORT 0 it relays nowhere and only
reads (an upstream that counts connections, answers nothing and closes
after 2 s of silence). The
first 64 bytes each connection sends towards the target go to
OUT_DIR/conn-N (written once complete, or at close).

A process, not a thread of the test: psycopg2's cancel() holds the GIL
while it waits for the server, so a relay thread in the test's own
process could not pass the cancel on.
"""

import os
import select
import socket
import sys
import threading

RECORD = 64


def relay(conn, target_port, path):
    record = bytearray()
    written = False
    up = socket.create_connection(("127.0.0.1", target_port), timeout=10) if target_port else None
    peers = {conn: up, up: conn} if up else {conn: None}
    try:
        while True:
            # a sink closes an idle connection after 2 s, as a server would
            readable, _, _ = select.select(list(peers), [], [], 300 if up else 2)
            if not readable:
                return
            for s in readable:
                data = s.recv(65536)
                if not data:
                    return
                if s is conn and len(record) < RECORD:
                    record.extend(data[:RECORD - len(record)])
                    if len(record) == RECORD:
                        written = write(path, record)
                if peers[s]:
                    peers[s].sendall(data)
    except OSError:
        pass
    finally:
        if not written:
            write(path, record)
        if up:
            up.close()
        conn.close()


def write(path, record):
    with open(path + ".tmp", "wb") as f:
        f.write(record)
    os.replace(path + ".tmp", path)
    return True


def main():
    target_port, out_dir = int(sys.argv[1]), sys.argv[2]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(sock.getsockname()[1], flush=True)
    n = 0
    while True:
        conn, _ = sock.accept()
        n += 1
        path = os.path.join(out_dir, f"conn-{n}")
        threading.Thread(target=relay, args=(conn, target_port, path), daemon=True).start()


if __name__ == "__main__":
    main()
