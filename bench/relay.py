"""A slow SMTP relay for P4: accepts everything, answers each message's DATA after a delay.

    python -m bench.relay PORT DELAY_MS

Standard library only (asyncio). It advertises PIPELINING and 8BITMIME, keeps nothing,
and runs until SIGTERM.
"""

import asyncio
import signal
import sys

GREETING = b"220 bench-relay ESMTP\r\n"
EHLO = b"250-bench-relay\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"


class Relay:
    """The server's one setting: the delay before each DATA answer."""

    def __init__(self, delay_seconds):
        self.delay = delay_seconds

    async def session(self, reader, writer):
        """One SMTP session: answer every command, read DATA to the final dot."""
        writer.write(GREETING)
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"LHLO"):
                    writer.write(EHLO)
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    while await reader.readline() not in (b".\r\n", b""):
                        pass
                    await asyncio.sleep(self.delay)
                    writer.write(b"250 2.0.0 queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 bye\r\n")
                    break
                else:
                    # HELO, MAIL, RCPT, RSET, NOOP: all accepted.
                    writer.write(b"250 2.0.0 ok\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


async def serve(port, delay_ms):
    """Serve on loopback ``port`` until SIGTERM or SIGINT."""
    relay = Relay(delay_ms / 1000)
    server = await asyncio.start_server(relay.session, "127.0.0.1", port, backlog=256)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on 127.0.0.1:{port}, {delay_ms} ms per message", flush=True)
    async with server:
        await stop.wait()


def main(argv=None):
    args = (argv or sys.argv)[1:]
    port, delay_ms = int(args[0]), float(args[1])
    asyncio.run(serve(port, delay_ms))


if __name__ == "__main__":
    main()
