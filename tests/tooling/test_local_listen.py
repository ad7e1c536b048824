"""`make serve`'s listening socket: connections accepted on it get TCP_NODELAY, as uvicorn's own sockets do."""

from __future__ import annotations

import asyncio
import socket

from embedrank_tools.local import listen


def test_connections_on_the_listening_socket_send_small_answers_without_waiting() -> None:
    # given the socket make serve binds before starting uvicorn, served by asyncio as uvicorn serves it
    sock = listen("127.0.0.1", 0)
    nodelay: list[int] = []

    async def scenario() -> None:
        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            nodelay.append(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=sock)
        port = sock.getsockname()[1]
        # when a client connects
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        while not nodelay:
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())
    # then the accepted connection has Nagle's algorithm off: an answer's headers and body, written one after the
    # other, do not wait for the client's delayed ACK (40 ms on Linux) between them
    assert nodelay == [1]
