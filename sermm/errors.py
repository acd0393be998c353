"""The one exception type for user mistakes: the CLI prints its message as one line."""


class SermmError(Exception):
    """Bad input or a bad request: a message naming the file, row or column and what is wrong."""
