"""One exception type for bad user input: the CLI prints its message, never a traceback."""


class UserError(Exception):
    """Bad input from the user (a file, key or value); the message says what is expected."""
