"""The one exception type that means "the user asked for something we cannot do"."""


class GenrunError(Exception):
    """Bad input: shown to the user as one line, without a traceback, exit code != 0."""
