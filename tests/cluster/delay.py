"""A TCP proxy that adds latency: `python -m tests.cluster.delay LISTEN_HOST:PORT TARGET_HOST:PORT CONTROL_FILE`.

This kernel has no tc netem, so the multi-host tests put this proxy in front
of MySQL. Every chunk is held for the delay (in seconds) written in
CONTROL_FILE (0, or a missing file: none) before it is passed on, each way,
in order, so a round trip costs twice the delay.
"""
import asyncio
import sys
import time
from pathlib import Path


def delay(control: Path) -> float:
    try:
        return float(control.read_text() or 0)
    except (OSError, ValueError):
        return 0.0


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, control: Path) -> None:
    """Copy one direction, each chunk due `delay` after it arrived, in order."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(send())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((time.monotonic() + delay(control), data))
    except OSError:
        pass
    queue.put_nowait((0.0, b""))
    try:
        await sender
    except OSError:
        pass


async def main(listen: str, target: str, control: Path) -> None:
    host, port = listen.rsplit(":", 1)
    to_host, to_port = target.rsplit(":", 1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(to_host, int(to_port))
        except OSError:
            writer.close()
            return
        await asyncio.gather(pump(reader, up_writer, control), pump(up_reader, writer, control))

    server = await asyncio.start_server(handle, host, int(port))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
