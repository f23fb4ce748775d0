"""LoopbackServer: the accept loop the tests' scripted servers share (the
impostor upstream, the cancel stand-ins, the relay's scripted upstream).

It listens on 127.0.0.1 on a free port and runs serve(conn) in a thread of
its own for every connection, counting them in .accepted. Subclasses
define serve(); close() stops accepting and waits for the threads."""

import socket
import threading

from pgcluster import LOOPBACK_V4


class LoopbackServer:
    def __init__(self, backlog=64):
        self.lock = threading.Lock()
        self.accepted = 0
        self.threads = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK_V4, 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            t = threading.Thread(target=self.serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def serve(self, conn):
        raise NotImplementedError

    def close(self, wait=5):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.accepter.join(wait)
        for t in self.threads:
            t.join(wait)
