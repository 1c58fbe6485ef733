"""``--preview``: each saved image shown small on the terminal, on stderr only.

Nothing is shown unless stderr is a terminal (so never in a pipe, a file or CI logs, and never on stdout,
which carries only the saved paths). The picture protocol is detected from what the terminal itself sets,
never guessed from ``TERM``:

- kitty graphics: ``KITTY_WINDOW_ID`` (kitty), ``TERM_PROGRAM=ghostty``;
- iTerm2 inline images: ``TERM_PROGRAM=iTerm.app`` or ``WezTerm``, ``LC_TERMINAL=iTerm2`` (iTerm over ssh);
- otherwise coloured half-blocks (``▀``, two pixels a cell) drawn with Rich, unless colour is off.

A preview is at most :data:`ROWS` rows high. An image Pillow cannot read is skipped with a note.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, TextIO

ROWS = 8
MAX_COLS = 48
CHUNK = 4096
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}


def protocol(env: Mapping[str, str]) -> str:
    """``kitty``, ``iterm`` or ``blocks``, from the variables the terminal sets."""
    program = env.get("TERM_PROGRAM", "")
    if env.get("KITTY_WINDOW_ID") or program.lower() == "ghostty":
        return "kitty"
    if program in ("iTerm.app", "WezTerm") or env.get("LC_TERMINAL") == "iTerm2":
        return "iterm"
    return "blocks"


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _png(path: Path, box: int = 512) -> bytes | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.thumbnail((box, box))
            im = im.convert("RGBA") if im.mode not in ("RGB", "RGBA") else im
            buf = io.BytesIO()
            im.save(buf, "PNG")
            return buf.getvalue()
    except Exception:  # noqa: BLE001 - not an image Pillow can read: no preview
        return None


def kitty(data: bytes, rows: int = ROWS) -> str:
    """The kitty graphics escape for a PNG, ``rows`` cells high, in chunks of 4096 base64 bytes."""
    b64 = base64.standard_b64encode(data).decode("ascii")
    parts = [b64[i:i + CHUNK] for i in range(0, len(b64), CHUNK)] or [""]
    out = []
    for i, part in enumerate(parts):
        more = 1 if i < len(parts) - 1 else 0
        head = f"a=T,f=100,r={rows},q=2,m={more}" if i == 0 else f"m={more}"
        out.append(f"\x1b_G{head};{part}\x1b\\")
    return "".join(out) + "\n"


def iterm(data: bytes, rows: int = ROWS) -> str:
    b64 = base64.standard_b64encode(data).decode("ascii")
    return f"\x1b]1337;File=inline=1;size={len(data)};height={rows};preserveAspectRatio=1:{b64}\x07\n"


def blocks(path: Path, stream: TextIO, rows: int = ROWS, max_cols: int = MAX_COLS) -> bool:
    """Half-block cells with Rich: each cell is two pixels, the upper as foreground, the lower as background."""
    from PIL import Image
    from rich.style import Style
    from rich.text import Text

    from .console import make_console

    console = make_console(file=stream, force_terminal=True)
    if console.color_system is None:
        return False  # no colour (NO_COLOR, --no-color, a dumb terminal): no picture
    try:
        with Image.open(path) as im:
            w, h = im.size
            height = rows * 2
            width = max(1, min(max_cols, round(w / h * height))) if h else 1
            small = im.convert("RGB").resize((width, height))
    except Exception:  # noqa: BLE001
        return False
    px = small.load()
    text = Text()
    for y in range(0, height, 2):
        for x in range(width):
            top, bottom = px[x, y], px[x, y + 1]
            text.append("▀", Style(color=f"rgb({top[0]},{top[1]},{top[2]})",
                                   bgcolor=f"rgb({bottom[0]},{bottom[1]},{bottom[2]})"))
        text.append("\n")
    console.print(text, end="", soft_wrap=True)
    return True


def show(paths: Iterable[str | Path], stream: TextIO | None = None, env: Mapping[str, str] | None = None,
         rows: int = ROWS) -> int:
    """Preview each image in ``paths`` on ``stream`` (stderr) when it is a terminal; returns how many."""
    import sys

    from ..core.term import clean_text

    stream = sys.stderr if stream is None else stream
    env = os.environ if env is None else env
    if not _is_tty(stream) or env.get("TERM") == "dumb":
        return 0
    kind = protocol(env)
    shown = 0
    for p in paths:
        path = Path(p)
        if path.suffix.lower() not in IMAGE_EXT or not path.is_file():
            continue
        try:
            stream.write(clean_text(path.name) + "\n")
            if kind == "blocks":
                ok = blocks(path, stream, rows)
            else:
                data = _png(path)
                ok = data is not None
                if ok:
                    stream.write(kitty(data, rows) if kind == "kitty" else iterm(data, rows))  # type: ignore[arg-type]
            if not ok:
                stream.write("(no preview)\n")
            stream.flush()
        except (OSError, ValueError):
            return shown
        shown += 1 if ok else 0
    return shown
