"""The ``nablanet`` command line's boundary: whatever happens inside a command, the process ends with
one line on stderr and an exit status, never a traceback.

* exit 0: done; 1: ``gradcheck`` found a wrong gradient; 2: an error, one line naming the command
  and, where one is involved, the file or option; 130: Ctrl-C; 143: SIGTERM (a training writes the
  state of its last finished epoch first, as on Ctrl-C).
* ``NABLANET_DEBUG=1`` shows the traceback instead, for developers.
* A warning (a learning rate that changes nothing, a model evaluated on another data set) is one
  line on stderr too, and the command goes on.
* A closed or failing stdout or stderr (``nablanet train | head -2``, ``>&-``, a full disk) does not
  stop a training: what cannot be printed is dropped.
* Once a Ctrl-C or SIGTERM is being handled, further ones are ignored: the state is written whole and
  the line that says where it is gets printed.

This module imports only the standard library, so that a Ctrl-C while NumPy is still loading ends
the same way; the parser and the commands are in :mod:`nablanet.app.commands`.
"""

from __future__ import annotations

import os
import sys
import warnings

from .signals import Terminated, exit_status, install, signals_ignored
from .terminal import SturdyStream, describe, one_line

EXIT_ERROR = 2


def run() -> None:
    """The ``nablanet`` program: run the command in ``sys.argv`` and exit with its status. A process that
    is stopping after Ctrl-C or SIGTERM keeps ignoring further ones until it has exited."""
    sys.exit(main(exiting=True))


def main(argv=None, *, exiting: bool = False) -> int:
    """Run one ``nablanet`` command with ``argv`` (default: ``sys.argv[1:]``); return its exit status.
    ``exiting``: the process ends after this call (then an interrupted command leaves signals ignored)."""
    debug = os.environ.get("NABLANET_DEBUG") == "1"
    restore_handlers = install()  # Ctrl-C and SIGTERM: at once, or at the next safe point of a training
    stdout, stderr, show_warning = sys.stdout, sys.stderr, warnings.showwarning
    sys.stdout, sys.stderr = SturdyStream(stdout), SturdyStream(stderr)
    context: dict[str, str] = {}

    def warning_line(message, category, filename, lineno, file=None, line=None):
        print(f"{_prefix(context)}: warning: {one_line(str(message))}", file=sys.stderr, flush=True)

    warnings.showwarning = warning_line
    try:
        from .commands import run_command

        return run_command(argv, context)
    except SystemExit:  # argparse: --help (0) or a usage error, already one line (2)
        raise
    except KeyboardInterrupt as interruption:
        if debug:
            raise
        with signals_ignored(keep=exiting):  # a second Ctrl-C or SIGTERM must not cut this line short
            reason = "terminated" if isinstance(interruption, Terminated) else "interrupted"
            detail = str(interruption)
            print(f"{_prefix(context)}: {reason}{'; ' + detail if detail else ''}", file=sys.stderr)
            return exit_status(interruption)
    except Exception as error:
        if debug:
            raise
        print(f"{_prefix(context)}: error: {one_line(describe(error))}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        try:
            sys.stdout.flush()
        finally:
            sys.stdout, sys.stderr, warnings.showwarning = stdout, stderr, show_warning
            restore_handlers()


def _prefix(context: dict[str, str]) -> str:
    return f"nablanet {context['command']}" if "command" in context else "nablanet"


if __name__ == "__main__":
    run()
