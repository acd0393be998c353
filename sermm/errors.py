"""The one exception type for user mistakes: the CLI prints its message as one line."""


class SermmError(Exception):
    """Bad input or a bad request: a message naming the file, row or column and what is wrong."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when empty): libraries such as
    transformers raise multi-line messages, and a SermmError is one line.

    >>> first_line(OSError("no config.json\\n  Check your internet connection."))
    'no config.json'
    >>> first_line(KeyError())
    'KeyError'
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
