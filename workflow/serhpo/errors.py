"""Errors a user can act on."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or configuration.

    The message says what was found, what was expected and what to do; the CLI prints
    it without a traceback and exits with status 2.
    """
