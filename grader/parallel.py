"""Using every core: a class's files are read, graded and written in chunks by forked workers.

A class of tens of thousands is Python work per file (parsing, validating, rendering, creating
files), which NumPy cannot batch away, so it is split across processes. Forking (Linux) lets a
worker inherit the function, the items and everything they refer to (the manifest, the
submissions read so far) instead of receiving them pickled; only results travel back.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any, Callable, Iterator

PARALLEL_FROM = 2000  # items; below this, starting processes costs more than it saves
CHUNK = 500  # items per task: big enough to amortise the hand-over, small enough to balance
_FORKED: tuple = ()  # what a forked worker inherits instead of having it pickled: (func, items, args)


class WorkerError(RuntimeError):
    """A worker process ended without finishing its work (killed, or out of memory)."""


def workers_for(count: int) -> int:
    """How many processes to use for ``count`` items: one per core (HWGEN_WORKERS overrides),
    and one unless the items are many and processes can be forked (Linux)."""
    setting = os.environ.get("HWGEN_WORKERS", "")
    if setting.isdigit() and int(setting) > 0:
        cores = int(setting)
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores < 2 or count < PARALLEL_FROM or not sys.platform.startswith("linux"):
        return 1
    return min(cores, 8)


def _run_forked(bounds: tuple[int, int]):
    func, items, args = _FORKED
    return func(items[bounds[0] : bounds[1]], *args)


def chunked_map(
    func: Callable[..., list],
    items: list,
    args: tuple = (),
    progress: Callable[[int], Any] | None = None,
    meanwhile: Callable[[], Any] | None = None,
) -> list:
    """``func(chunk, *args)`` over chunks of ``items``, results concatenated in order (see map_chunks)."""
    out: list = []
    for count, part in map_chunks(func, items, args, meanwhile):
        out.extend(part)
        if progress is not None:
            progress(count)
    return out


def map_chunks(
    func: Callable[..., list], items: list, args: tuple = (), meanwhile: Callable[[], Any] | None = None
) -> Iterator[tuple[int, list]]:
    """``func(chunk, *args)`` over chunks of ``items``: yields (items in the chunk, its result), in order.

    With many items the chunks go to forked worker processes, one per core, and each result is
    yielded as soon as it is back, so that this process can use it while the workers go on
    (writing files, say); with few items, or where processes cannot be forked, they run here.
    ``meanwhile`` (if given) runs in this process once the work is handed out, before the first
    result is taken: other work overlaps the workers', and the workers were forked before it.
    """
    global _FORKED
    bounds = [(start, min(start + CHUNK, len(items))) for start in range(0, len(items), CHUNK)]
    workers = workers_for(len(items))
    if workers == 1:
        if meanwhile is not None:
            meanwhile()
        for start, stop in bounds:
            yield stop - start, func(items[start:stop], *args)
        return
    import multiprocessing

    _FORKED = (func, items, args)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.imap(_run_forked, bounds)  # every task is handed out at once
            if meanwhile is not None:
                meanwhile()
            for (start, stop), part in zip(bounds, parts):
                yield stop - start, part
    finally:
        _FORKED = ()


def start_forked(func: Callable[[], Any]) -> Callable[[], Any]:
    """Start ``func()`` in a forked process now, and return a function that waits for its
    result (raising what it raised; asked again, it answers the same), so that this process can
    do other work meanwhile; the function's ``ready()`` tells whether the result is in. Where
    processes cannot be forked, ``func`` runs when its result is asked for.

    The result travels pickled through a pipe: worth it for work that takes long and returns
    little (a manifest read and validated, as plain columns). The function's ``pickled()``
    gives what came, pickled as it came, ``(True, result)``, to pass the result on to other
    processes without pickling it again.
    """
    if not sys.platform.startswith("linux"):
        return func
    import multiprocessing

    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def run() -> None:
        try:
            outcome = (True, func())
        except BaseException as exc:  # travels back and is raised there
            outcome = (False, exc)
        try:
            send.send(outcome)
        except Exception:  # the exception does not pickle: say what it was
            send.send((False, RuntimeError(f"{type(outcome[1]).__name__}: {outcome[1]}")))

    process = context.Process(target=run, daemon=True)
    process.start()
    send.close()

    outcome: list = []  # (ok, value), once received
    received: list[bytes] = []  # the same, pickled

    def wait() -> Any:
        if not outcome:
            try:
                received.append(receive.recv_bytes())
                outcome.append(pickle.loads(received[0]))
            except (EOFError, OSError):  # OSError: it died in the middle of its reply
                raise WorkerError("a worker process ended before its work was done") from None
            finally:
                receive.close()
                process.join()
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def pickled() -> bytes:
        """``(True, result)`` pickled, as it came (after wait() returned)."""
        return received[0]

    def ready() -> bool:
        """Whether wait() would return (or raise) at once: the result is here, or on its way."""
        return bool(outcome) or receive.closed or receive.poll()

    def cancel() -> None:
        """Stop the process if its result is no longer wanted (nothing if it was taken)."""
        process.terminate()
        process.join()
        receive.close()

    wait.cancel = cancel  # type: ignore[attr-defined]
    wait.ready = ready  # type: ignore[attr-defined]
    wait.pickled = pickled  # type: ignore[attr-defined]
    return wait


class Crew:
    """Forked worker processes that keep what they made between calls.

    A pool hands each task to whichever worker is free, so whatever a task made must travel
    back to be used again. A crew's calls name their worker: a worker can read some files in a
    first call and grade them in a later one, and only what the caller needs travels (the
    submissions of a class, pickled and unpickled, were a tenth of ``hwgen grade``).

    Each worker answers every call with one reply, in order; ``replies`` yields them as they
    come from whichever worker. The workers inherit this process as it is when the crew starts
    (its imports, the list of files), so calls pass indices rather than data where they can.
    A worker's exception is raised here when its reply is taken; a worker that dies is a
    WorkerError.
    """

    def __init__(self, size: int):
        import multiprocessing

        context = multiprocessing.get_context("fork")
        self._connections = []
        self._processes = []
        self._pending = [0] * size  # calls sent to each worker and not yet answered
        try:
            for _ in range(size):
                mine, theirs = context.Pipe()
                process = context.Process(target=_serve, args=(theirs,), daemon=True)
                process.start()
                theirs.close()
                self._connections.append(mine)
                self._processes.append(process)
        except BaseException:
            self.close()
            raise

    @property
    def size(self) -> int:
        return len(self._connections)

    def pending(self, worker: int) -> int:
        return self._pending[worker]

    def call(self, worker: int, func: Callable[..., Any], *args: Any) -> None:
        """Ask ``worker`` for ``func(*args)`` (a module-level function: it is sent by name)."""
        try:
            self._connections[worker].send((func, args))
        except (BrokenPipeError, ConnectionResetError):
            raise WorkerError("a worker process ended before its work was done") from None
        self._pending[worker] += 1

    def replies(self) -> Iterator[tuple[int, Any]]:
        """(worker, result) for each call sent, as they come back, until none is pending; calls
        sent while iterating are waited for too."""
        from multiprocessing.connection import wait

        while any(self._pending):
            waiting = {self._connections[k]: k for k, count in enumerate(self._pending) if count}
            for connection in wait(list(waiting)):
                worker = waiting[connection]
                try:
                    ok, value = connection.recv()
                except (EOFError, OSError):  # OSError: it died in the middle of a reply
                    raise WorkerError("a worker process ended before its work was done") from None
                self._pending[worker] -= 1
                if not ok:
                    raise value
                yield worker, value

    def close(self) -> None:
        """Stop every worker (one in the middle of a call is terminated)."""
        for connection, process in zip(self._connections, self._processes):
            try:
                connection.send(None)
            except OSError:
                pass
            connection.close()
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join()
        self._connections, self._processes = [], []

    def __enter__(self) -> "Crew":
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is not None:  # a worker may be mid-call: do not wait for it
            for process in self._processes:
                process.terminate()
        self.close()


def _serve(connection: Any) -> None:
    """A crew worker: run each call received and send back (ok, result or exception)."""
    while True:
        try:
            message = connection.recv()
        except (EOFError, KeyboardInterrupt):
            break
        if message is None:
            break
        func, args = message
        try:
            reply = (True, func(*args))
        except BaseException as exc:  # travels back and is raised there
            reply = (False, exc)
        try:
            connection.send(reply)
        except Exception:  # the result or the exception does not pickle: say what it was
            connection.send((False, RuntimeError(f"{type(reply[1]).__name__}: {reply[1]}")))
    connection.close()
