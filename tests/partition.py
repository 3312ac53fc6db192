"""A TCP relay that can be partitioned: what a frozen or unreachable database looks like.

Tests point the service at ``PartitionProxy.port`` instead of at PostgreSQL. Frozen, the
proxy relays no byte in either direction and never relays a connection it accepts, yet
keeps every socket open: the client sees no error, only silence, exactly as in a network
partition or with the server stopped (SIGSTOP). Thawed, everything held is delivered.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading

__all__ = ["PartitionProxy"]


class PartitionProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        # Relaying holds this lock; freeze() takes it, so nothing is relayed once it returns.
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self._closed = False
        self._sockets: list[socket.socket] = [self._listener]
        self.accepted = 0  # connections accepted so far, frozen or not
        threading.Thread(target=self._accept, name="partition-accept", daemon=True).start()

    def freeze(self) -> None:
        with self._lock:
            self._open.clear()

    def thaw(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._closed = True
        self._open.set()
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._sockets.append(client)
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self._open.wait()  # accepted, but not relayed while frozen
        if self._closed:
            return
        try:
            server = socket.create_connection(self._upstream, timeout=10)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        self._sockets.append(server)
        for src, dst in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while not self._closed:
            self._open.wait()
            try:
                ready, _, _ = select.select([src], [], [], 0.05)
            except (OSError, ValueError):
                break
            if not ready:
                continue
            with self._lock:
                if not self._open.is_set():
                    continue  # frozen between select and here: leave the bytes unread
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    break
                try:
                    dst.sendall(data)
                except OSError:
                    break
        # One side finished: pass the end on, as TCP would once the path is back.
        for sock in (dst, src):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
