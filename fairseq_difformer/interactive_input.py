"""fairseq-interactive's input lines (``--input FILE``, or ``-`` for stdin), read as the task
expects them.

fairseq's ``fairseq_cli.interactive.buffered_read`` opens ``--input`` with
``fileinput.hook_encoded("utf-8")``, which decodes strictly: a byte that is not UTF-8 ends the run
in a ``UnicodeDecodeError`` traceback before any line reaches the task, a missing file in a
``FileNotFoundError`` traceback, and a byte-order mark opening the file (Windows editors write one)
is read as part of the first word, which becomes ``<unk>``. fairseq offers no hook for its input;
its ``main`` looks ``buffered_read`` up as a module global at call time, so the difformer task puts
:func:`buffered_read` there when it is set up inside fairseq-interactive (:func:`install`).

The file and stdin are read alike: UTF-8 with ``surrogateescape``, so that an undecodable byte
reaches the task as a lone surrogate and the task refuses its line by number
(``DifformerTask.get_interactive_tokens_and_lengths``, :mod:`difformer_core.text`); a leading BOM
is dropped. Lines are stripped and handed over ``buffer_size`` at a time, as fairseq does.
"""

import contextlib
import io
import sys

from difformer_core.errors import DifformerError

INTERACTIVE = "fairseq_cli.interactive"
BOM = "\ufeff"


def install(input_path=None):
    """Make the running fairseq-interactive read its input with :func:`buffered_read`; a given
    ``input_path`` (its ``--input``) that cannot be read stops the run now, before the models load."""
    main = sys.modules.get("__main__")
    for module in (sys.modules.get(INTERACTIVE),
                   main if getattr(getattr(main, "__spec__", None), "name", None) == INTERACTIVE else None):
        if module is not None and hasattr(module, "buffered_read"):
            module.buffered_read = buffered_read
    if input_path and input_path != "-":
        with open_input(input_path):
            pass


def buffered_read(input, buffer_size):
    """The stripped lines of ``input`` (a file, or ``-`` for stdin) in lists of ``buffer_size``:
    fairseq's ``buffered_read``, decoding as described above."""
    buffer = []
    with open_input(input) as lines:
        for number, line in enumerate(lines, 1):
            buffer.append((line[1:] if number == 1 and line.startswith(BOM) else line).strip())
            if len(buffer) >= buffer_size:
                yield buffer
                buffer = []
    if buffer:
        yield buffer


@contextlib.contextmanager
def open_input(path):
    """``path`` (``-``: stdin) as a text stream decoding UTF-8 with ``surrogateescape``; a file
    that cannot be opened is one line naming ``--input``."""
    if path == "-":
        binary = getattr(sys.stdin, "buffer", None)
        if binary is None:  # stdin replaced by a text stream: its text is already decoded
            yield sys.stdin
            return
        stdin = io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape")
        try:
            yield stdin
        finally:
            stdin.detach()  # leave sys.stdin's buffer open
        return
    try:
        stream = open(path, encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        reason = ("no such file" if isinstance(exc, FileNotFoundError)
                  else "it is a folder" if isinstance(exc, IsADirectoryError) else exc.strerror or str(exc))
        raise DifformerError(
            f"--input {path} cannot be read ({reason}): give a text file of source sentences, one per "
            f"line, or --input - to read them from stdin"
        ) from None
    with stream:
        yield stream
