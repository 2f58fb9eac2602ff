"""What every command shares for a user's mistake: one line `tool: error: what was wrong; what to
do` on stderr and exit status 2 (argparse's own style, so a bad flag and a bad setting read alike),
no traceback. And the rule that a rerun never overwrites a finished run's outputs.

`UsageError` is what a command raises for a mistake it detected itself; `run_cli(prog, fn)` turns
it, and the library's own "you asked for something impossible" exceptions (an unknown config key,
a missing file, a setting the device cannot honour), into that line. Anything else is a bug and
keeps its traceback; `INFOMIN_DEBUG=1` in the environment keeps it for user errors too.
"""
from __future__ import annotations

import datetime
import glob
import os
import shutil
import sys
from typing import Callable, Iterable, NoReturn

__all__ = ["UsageError", "fail", "run_cli", "user_message", "existing_outputs", "refuse_or_move_aside"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


class UsageError(Exception):
    """A user's mistake the command can name, with what to do about it."""


def fail(prog: str, message: str) -> NoReturn:
    """Print `prog: error: message` (one line) and exit with status 2."""
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


def user_message(err: BaseException) -> str:
    """The message of an exception without KeyError's quotes."""
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    return str(err)


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the input is wrong", not "the code is wrong"."""
    from infomin.config import UnknownKeyError

    errors = [UsageError, UnknownKeyError, FileNotFoundError, NotADirectoryError, ValueError]
    try:  # the pretraining layer's data errors (too many unreadable images), when installed
        from infomin.pretrain.data import BadImageError
        errors.append(BadImageError)
    except ImportError:
        pass
    try:  # infomin.device: a CUDA device asked for where there is none
        from infomin.device import DeviceUnavailableError
        errors.append(DeviceUnavailableError)
    except ImportError:
        pass
    return tuple(errors)


def run_cli(prog: str, fn: Callable[[], int | None], *, extra: tuple[type[BaseException], ...] = (),
            interrupted: str = "") -> int:
    """Run a command body: a user's mistake becomes one `prog: error:` line and exit status 2;
    Ctrl-C where no stop hook takes it (pretraining's loop checkpoints on it) ends with one line,
    `prog: interrupted` plus `interrupted` (e.g. how to continue), and status 130."""
    try:
        return fn() or 0
    except _user_errors() + tuple(extra) as err:
        if os.environ.get("INFOMIN_DEBUG", "") not in ("", "0"):
            raise
        fail(prog, user_message(err))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted{'; ' + interrupted if interrupted else ''}", file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERRUPTED)


def existing_outputs(folder: str, patterns: Iterable[str]) -> list[str]:
    """The files (or folders) in `folder` matching any of `patterns` (glob, relative)."""
    found = []
    for pattern in patterns:
        found += glob.glob(os.path.join(glob.escape(folder), pattern))
    return sorted(set(found))


def refuse_or_move_aside(folder: str, patterns: Iterable[str], *, overwrite: bool, what: str,
                         advice: str, also: Iterable[str] = (), move: bool = True) -> str | None:
    """A rerun into `folder` that holds a previous run's outputs (`patterns`) is refused with a
    UsageError saying `advice` (e.g. "continue it with --resume auto"), unless `overwrite`: then
    those outputs and the run's other files (`also`: its log, metrics) are moved into
    `folder/replaced-<UTC time>/` (nothing is deleted, and the new run's logs and checkpoints do
    not mix with the old ones). Returns that folder, or None.

    Call it before anything is written or read. Under torchrun only rank 0 moves (`move`).
    """
    patterns = tuple(patterns)
    found = existing_outputs(folder, patterns)
    if not found:
        return None
    if not overwrite:
        names = ", ".join(os.path.basename(p) for p in found[:3]) + (", ..." if len(found) > 3 else "")
        raise UsageError(f"{folder} already holds {what} ({names}); {advice + ', ' if advice else ''}"
                         "give a new output folder, or pass --overwrite to start over (the old files are "
                         f"moved into {os.path.join(folder, 'replaced-<time>')}/).")
    if not move:
        return None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    aside = os.path.join(folder, f"replaced-{stamp}")
    n = 1
    while os.path.exists(aside):
        n += 1
        aside = os.path.join(folder, f"replaced-{stamp}-{n}")
    os.makedirs(aside)
    found = existing_outputs(folder, patterns + tuple(also))
    for path in found:
        shutil.move(path, os.path.join(aside, os.path.basename(path)))
    print(f"--overwrite: moved the previous run's {len(found)} file(s) to {aside}", file=sys.stderr, flush=True)
    return aside
