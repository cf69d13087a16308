# The C extension built from _crlfscan.c (optional; see kumocore.mail.crlf).

def scan(data: bytes | bytearray | memoryview, limit: int, /) -> tuple[bool, bool]:
    """(every CR and LF of data is in a CRLF pair, no line is over limit octets)."""
