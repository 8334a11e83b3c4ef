"""The one base of every bad-input error: the CLI turns a :class:`UserError` into its message
and ``exit_code`` (2: bad input), never a traceback. Any other exception is a bug in
energybench and surfaces as one (exit 1), so a genuine ``ValueError`` is never reported as the
user's fault. A leaf module: it imports nothing, so every layer can raise these."""

from __future__ import annotations


class UserError(Exception):
    """Input the user can fix: a suite, an option, a path, a run folder, this machine."""

    exit_code = 2


class SetupError(UserError, ValueError):
    """A valid suite that cannot run as asked here (a device, a dataset, ``--only``, ...)."""
