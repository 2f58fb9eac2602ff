"""The one exception the converter raises for inputs it refuses."""


class ConversionError(ValueError):
    """A checkpoint the converter will not convert.

    The message says what was wrong and what to do about it; the CLI prints it and exits
    non-zero. No output file exists when this is raised.
    """
