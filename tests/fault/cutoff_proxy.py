# SPDX-License-Identifier: MIT
"""
cutoff_proxy.py — a TCP proxy on loopback between one worker and the errand server that the
fault campaign can cut: cut() black-holes it, restore() lets traffic through again.

While cut, nothing crosses in either direction and nothing is closed: bytes already read stay
in the proxy, end-of-stream is not passed on, and a new connection is accepted (as the
kernel's listen backlog would anyway) but not connected onwards. The worker's requests hang
until its own timeouts give up on them, as they do when a network drops packets. On
restore() the held bytes go on, late — as TCP delivers what it retransmitted once a network
heals — so the server may still act on a request whose sender has stopped waiting (a claim
whose answer then reaches nobody).

Why a proxy and not a network namespace with a veth pair (ip netns, unshare -n) and a DROP
rule: the same cut, without root, iptables/nftables or the ip tool, and without a namespace
per worker that a crashed campaign could leave behind; it runs wherever the campaign runs.
What it cannot model is a cut that also stops the worker's loopback traffic to other
servers; errand's worker talks to one server only.
"""
import socket
import threading

CHUNK = 65536
ACCEPT_BACKLOG = 64


class CutoffProxy:
    def __init__(self, upstream_port, host="127.0.0.1"):
        self.upstream = (host, upstream_port)
        self.open = threading.Event()
        self.open.set()
        self.listener = socket.create_server((host, 0), backlog=ACCEPT_BACKLOG)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def is_cut(self):
        return not self.open.is_set()

    def cut(self):
        self.open.clear()

    def restore(self):
        self.open.set()

    def close(self):
        self.closed = True
        self.open.set()
        self.listener.close()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(conn,), daemon=True).start()

    def _connect(self, conn):
        self.open.wait()
        try:
            up = socket.create_connection(self.upstream)
        except OSError:
            conn.close()  # the server is down: the worker sees its connection end
            return
        pair = _Pair(conn, up)
        for src, dst in ((conn, up), (up, conn)):
            threading.Thread(target=self._pump, args=(pair, src, dst), daemon=True).start()

    def _pump(self, pair, src, dst):
        try:
            while True:
                data = src.recv(CHUNK)
                self.open.wait()
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    break
                dst.sendall(data)
        except OSError:
            # One side reset: take the other down too, as a broken path would.
            pair.shutdown()
        pair.pump_done()


class _Pair:
    """The two sockets of one proxied connection, closed when both directions ended."""

    def __init__(self, a, b):
        self.socks = (a, b)
        self.left = 2
        self.lock = threading.Lock()

    def shutdown(self):
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def pump_done(self):
        with self.lock:
            self.left -= 1
            if self.left:
                return
        for s in self.socks:
            s.close()
