"""Errors a user can act on (exit code 2, one line, no traceback)."""


class UserError(Exception):
    """Bad input: a file, key or value the user gave is wrong. The message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
