"""Data: loading both UCI layouts, validation, splits and the season scenario."""


class DataError(Exception):
    """The data cannot be used; the message names the file, column, row and rule."""
