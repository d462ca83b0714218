"""corral's Dask launcher: one Dask scheduler or worker, owned by the corral-agent that runs it.

corral-agent writes this file into the cluster's dask/ directory and runs it with the chosen
Python; it is not meant to be run by hand. Protocol with the agent:

- stdout carries one line per state change: `dashboard HOST:PORT` (the scheduler's, before
  its `ready`), `ready ADDRESS`,
  `retiring`, `closed REASON`, `failed MESSAGE`, `missing MESSAGE`. Dask's own logs go to stderr.
- stdin is a pipe whose other end only the agent holds: when it closes (the agent exited or
  was killed, however), this process exits at once, so no Dask process outlives its agent.
- SIGTERM: retire through the scheduler first (a worker's data is moved to other workers),
  then close. SIGINT: close now (the whole cluster is going away).

Roles: `scheduler HOST CA CERT KEY`, `worker SCHEDULER NAME NTHREADS MEMORY CA CERT KEY [HOST]`.
"""

import asyncio
import os
import signal
import sys
import threading

EXIT_MISSING = 3
EXIT_ORPHANED = 70


def say(*words):
    print(*words, flush=True)


def watch_agent():
    """Exits the process when the agent's end of stdin closes."""

    def run():
        # os.read, not sys.stdin: a buffered reader's lock held by this thread would abort
        # the interpreter's own shutdown.
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        os._exit(EXIT_ORPHANED)

    threading.Thread(target=run, name="corral-agent-watch", daemon=True).start()


def security(ca, cert, key):
    from distributed.security import Security

    # The same leaf for every role this process plays (a worker also connects to its peers).
    return Security(
        tls_ca_file=ca,
        tls_client_cert=cert,
        tls_client_key=key,
        tls_scheduler_cert=cert,
        tls_scheduler_key=key,
        tls_worker_cert=cert,
        tls_worker_key=key,
        require_encryption=True,
    )


def on_signals(loop, retire, close):
    loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(retire()))
    loop.add_signal_handler(signal.SIGINT, lambda: asyncio.ensure_future(close()))


async def scheduler(host, ca, cert, key):
    from distributed import Scheduler

    s = Scheduler(
        host=host,
        port=0,
        protocol="tls",
        security=security(ca, cert, key),
        dashboard_address="127.0.0.1:0",
    )
    await s
    port = s.http_server.port if getattr(s, "http_server", None) else None
    if port:
        say("dashboard", "127.0.0.1:%d" % port)
    say("ready", s.address)

    async def close():
        await s.close(reason="corral-agent")

    on_signals(asyncio.get_running_loop(), close, close)
    await s.finished()
    say("closed", "scheduler stopped")


async def worker(address, name, nthreads, memory, ca, cert, key, host=None):
    from distributed import Worker

    kwargs = {}
    if host:
        kwargs["host"] = host
    w = Worker(
        address,
        name=name,
        nthreads=int(nthreads),
        memory_limit=int(memory),
        security=security(ca, cert, key),
        death_timeout=60,
        **kwargs,
    )
    await w
    say("ready", w.address)
    state = {"why": "closed by the scheduler"}

    async def retire():
        state["why"] = "retired"
        say("retiring")
        try:
            await w.close_gracefully(reason="corral-agent-retire")
        finally:
            await w.close(reason="corral-agent-retire")

    async def close():
        state["why"] = "stopped"
        await w.close(reason="corral-agent-stop")

    on_signals(asyncio.get_running_loop(), retire, close)
    await w.finished()
    say("closed", state["why"])


def main(argv):
    watch_agent()
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as e:
        say(
            "missing",
            "%s cannot import %s (%s)" % (sys.executable, e.name or "dask", e),
        )
        return EXIT_MISSING
    role, args = argv[0], argv[1:]
    run = {"scheduler": scheduler, "worker": worker}.get(role)
    if run is None:
        say("failed", "unknown role %r" % role)
        return 2
    try:
        asyncio.run(run(*args))
    except Exception as e:
        say("failed", ("%s: %s" % (type(e).__name__, e)).replace("\n", " "))
        return 1
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is closed already; skip the interpreter's slow teardown.
    os._exit(code)
