"""Numbers and names as people read them, shared by the CLI and the GUI."""
from __future__ import annotations

import math
import unicodedata


def human_bytes(n: int | float) -> str:
    """1536 -> '1.5 KB'; bytes below 1 KB as a whole number."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def human_count(n: int) -> str:
    return f"{n:,}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 value', '2 values', '12,000 values'."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def number(v, digits: int = 6) -> str:
    """One tensor element as people read it: ``digits`` significant digits, integers whole,
    NaN and infinities named (never numpy's repr such as ``np.float32(3.2e-15)``)."""
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, bytes):
        return repr(v.decode("utf-8", "replace"))
    if isinstance(v, (bool, int, str)):
        return str(v)
    if isinstance(v, complex):
        sign = "+" if v.imag >= 0 else "-"
        return f"{number(v.real, digits)}{sign}{number(abs(v.imag), digits)}j"
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"{v:.{digits}g}"


def counter_labels(keys) -> dict[str, str]:
    """Shortest unambiguous label of each counter: its last path segments (a Keras 3
    optimizer's anonymous ``optimizer/vars/0`` is its iteration count)."""
    keys = list(keys)
    labels = {}
    for k in keys:
        if k.endswith("optimizer/vars/0"):
            labels[k] = "iterations"
            continue
        parts = k.split("/")
        n = 1
        while True:
            label = "/".join(parts[-n:])
            clash = any(o != k and "/".join(o.split("/")[-n:]) == label for o in keys)
            if (not clash and not label.isdigit()) or n >= len(parts):
                break
            n += 1
        labels[k] = label
    return labels


def counters_text(c) -> str:
    """Training counters first (step, iterations, epoch), save_counter last."""
    items = sorted(c.counters.items(), key=lambda kv: ("save_counter" in kv[0], kv[0]))
    labels = counter_labels(c.counters)
    return ", ".join(f"{labels[k]}={v:g}" if isinstance(v, float) else f"{labels[k]}={v}"
                     for k, v in items)


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Control and format characters (bidi overrides, zero-width...), line and paragraph separators,
# and the lone surrogates Python decodes undecodable bytes of a file name to.
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def safe_name(text: str, keep: str = "") -> str:
    """``text`` (a name read from disk, or a message quoting one) safe to print on a terminal
    or show in a table: every control or format character is escaped (``\\n``, ``\\x1b``,
    ``\\u202e``), an undecodable byte shows as ``\\xNN``; everything else, accents included,
    is left as it is. A hostile file name can then neither move the cursor, recolour or retitle
    the terminal, nor pass for two lines or for another name. ``keep``: characters left as they
    are (a whole report's newlines)."""
    probe = text
    for ch in keep:
        probe = probe.replace(ch, "")
    if probe.isprintable():      # the usual case, at C speed
        return text
    return "".join(_escape(ch) if ch not in keep and unicodedata.category(ch) in
                   _UNSAFE_CATEGORIES else ch for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if 0xDC80 <= code <= 0xDCFF:        # os.fsdecode's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
