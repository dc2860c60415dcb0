"""Where the ``muxscope`` command starts: quiet under Ctrl-C and SIGTERM from its first line.

FastAPI, uvicorn and the engine take ~70 ms to import. While app.cli was the entry module,
those imports ran before any of its code: a Ctrl-C then ended in a KeyboardInterrupt
traceback, a SIGTERM killed the process unhandled (SPEC §1 wants neither). So this module
imports nothing heavy at its top, and main() has both signals handled before it imports the
rest.
"""

# The builtin half of the signal module, loaded with the interpreter: `import signal` (its enum
# wrapper) takes 0.5-5 ms more imports (enum, functools...), and a SIGTERM meanwhile would
# find no handler yet.
import _signal  # type: ignore[import-not-found]
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType, TracebackType


def _interrupt(signum: int, frame: "FrameType | None") -> None:
    raise KeyboardInterrupt


def _set_handler(signum: int, handler: object) -> None:
    """`signal.signal`, a no-op off the main thread (where Python refuses it with ValueError):
    main() called from a thread runs the command without touching signals."""
    try:
        _signal.signal(signum, handler)
    except ValueError:
        pass


class SignalsHeld:
    """SIGINT and SIGTERM held while the block runs (imports), and acted on at its end.

    A KeyboardInterrupt raised in the middle of an import can land in one of importlib's
    weakref callbacks, where CPython prints it ("Exception ignored in ...", a traceback) and
    drops it: the Ctrl-C is lost, the start-up goes on. So in the block a signal is only noted;
    at its end the handlers from before come back, and a noted signal raises KeyboardInterrupt.
    Off the main thread (where handlers cannot be set) it does nothing."""

    def __init__(self) -> None:
        self.noted: list[int] = []
        self._previous: tuple[object, object] | None = None

    def _note(self, signum: int, frame: "FrameType | None") -> None:
        self.noted.append(signum)

    def __enter__(self) -> "SignalsHeld":
        try:
            before_int = _signal.signal(_signal.SIGINT, self._note)
        except ValueError:  # not the main thread
            return self
        self._previous = (before_int, _signal.signal(_signal.SIGTERM, self._note))
        return self

    def __exit__(self, kind: "type[BaseException] | None", exc: "BaseException | None",
                 tb: "TracebackType | None") -> None:
        if self._previous is not None:
            _signal.signal(_signal.SIGINT, self._previous[0])
            _signal.signal(_signal.SIGTERM, self._previous[1])
        if self.noted:
            raise KeyboardInterrupt


def interrupted_status(args: "list[str]") -> int:
    """The exit status of a run ended by Ctrl-C or SIGTERM before the command's own handling
    (the dashboard and replay 0, as once they serve; bench 130: its own says 143 for SIGTERM)."""
    return 130 if args[:1] == ["bench"] else 0


def main(argv: "Sequence[str] | None" = None) -> int:
    """Entry point of the ``muxscope`` console script and of ``python -m app``.

    When it returns, SIGINT and SIGTERM take their default action again: from there to the end
    of the process (the interpreter's teardown) a signal ends it at once, with nothing printed.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    status = interrupted_status(args)
    try:
        try:
            _set_handler(_signal.SIGTERM, _interrupt)  # SIGINT raises KeyboardInterrupt already
            with SignalsHeld():
                from app.cli import main as run
            status = run(args)
        finally:
            _set_handler(_signal.SIGINT, _signal.SIG_DFL)
            _set_handler(_signal.SIGTERM, _signal.SIG_DFL)
    except KeyboardInterrupt:
        pass
    # CPython (3.11) marks a KeyboardInterrupt "unhandled" as soon as it passes through code
    # run from a string (dataclasses and namedtuple make their methods so), even if it is
    # caught later, and at exit then kills the process with SIGINT whatever main() returned.
    # Running a string clears the mark.
    exec("")
    return status
