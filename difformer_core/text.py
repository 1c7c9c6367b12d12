"""Input text that lost bytes on its way in: read with Python's ``surrogateescape`` (stdin under
a C.UTF-8 locale, ``open(..., errors="surrogateescape")``) an undecodable byte becomes a lone
surrogate U+DC80–U+DCFF; read with ``errors="replace"`` it becomes U+FFFD. Either would reach the
model as an unknown word, without a word to the user."""


def undecodable(text: str):
    """``(column, what)`` of the first undecodable byte in ``text`` (column from 1), or None."""
    for column, char in enumerate(text, 1):
        if "\udc80" <= char <= "\udcff":
            return column, f"byte 0x{ord(char) - 0xDC00:02x}, which is not UTF-8"
        if char == "\ufffd":
            return column, "U+FFFD, a replaced byte that was not UTF-8"
    return None
