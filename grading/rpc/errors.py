"""RemoteError: how every failure of a remote operation reaches trusted code."""
from __future__ import annotations


class RemoteError(Exception):
    """A remote operation failed: student code raised (``"ValueError: ..."``), the kernel died or timed out, or
    its answer was malformed. The message never contains kernel-side tracebacks or source code.

    When student code raised one of a fixed set of builtin exceptions, the RemoteError is *also* an instance of
    that builtin (``except NotImplementedError``, ``hasattr`` on a remote object and similar trusted code behave
    as they would in-process); ``remote_type`` holds the kernel-side type name either way.
    """

    remote_type: str = ""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_MAPPED_EXCEPTIONS = (ArithmeticError, AssertionError, AttributeError, FloatingPointError, ImportError,
                      IndexError, KeyError, LookupError, MemoryError, ModuleNotFoundError, NameError,
                      NotImplementedError, OverflowError, RecursionError, RuntimeError, TypeError, ValueError,
                      ZeroDivisionError)
_REMOTE_CLASSES: dict[str, type] = {
    cls.__name__: type("RemoteError", (RemoteError, cls), {"__module__": __name__}) for cls in _MAPPED_EXCEPTIONS}


def remote_error(etype: str, msg: str) -> RemoteError:
    """RemoteError("etype: msg"), an instance of the builtin `etype` too when it is one of the mapped ones."""
    cls = _REMOTE_CLASSES.get(etype, RemoteError)
    err = cls(f"{etype}: {msg}" if msg else etype)
    err.remote_type = etype
    return err


def printable(text: str) -> str:
    """Drop control characters (ANSI escapes etc.) except newline and tab."""
    return "".join(ch for ch in text if ch in "\n\t" or (ch.isprintable()))
