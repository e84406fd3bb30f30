"""Reading one large JSON object member by member, without building it whole.

A million-video annotation file parsed by ``json.load`` holds every entry as Python dicts at
once (2 GB for 1.47M videos); `read_object_streaming` hands the members of one chosen
top-level field to a callback as they are parsed, so only a chunk of text and one entry are
in memory. Values are parsed by the C scanner of the json module, so the speed is
json.load's.
"""
import gc
import json
import re
import sys
from contextlib import contextmanager

CHUNK_CHARS = 1 << 22
_WS = re.compile(r"[ \t\n\r]*")


class StreamError(ValueError):
    """The text is not valid JSON; the message gives the line and column in the file."""


class RepeatedKey(ValueError):
    """An object gives one key twice: JSON readers differ on which value they keep (json and
    simplejson the last, others the first), so r3d refuses the file instead of picking one."""


def unique_members(pairs):
    """object_pairs_hook that builds the object, refusing a key given twice."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise RepeatedKey(f"key {key!r} appears twice in one object")
            seen.add(key)
    return obj


#: The decoder of every JSON file r3d reads from users: json's C scanner, refusing repeated keys.
DECODER = json.JSONDecoder(object_pairs_hook=unique_members)


def load_json(f):
    """json.load of a text file through DECODER (a UTF-8 BOM is skipped)."""
    text = f.read()
    return DECODER.decode(text[1:] if text.startswith("\ufeff") else text)


class NotAnObject(ValueError):
    """The top level is valid JSON but not an object; `value` is what it is."""

    def __init__(self, value):
        super().__init__("top level is not an object")
        self.value = value


class _Text:
    """A window on a text file, refilled in chunks: `s[i:]` is what is left to parse."""

    def __init__(self, f, chunk):
        self.f, self.chunk = f, chunk
        self.s, self.i, self.eof = "", 0, False
        self.offset = 0  # file offset (in characters) of s[0]
        if self.more() and self.s.startswith("\ufeff"):  # a UTF-8 byte order mark
            self.i = 1

    def more(self, size=None) -> bool:
        """Append a chunk, or `size` characters (dropping what is parsed); False at the end of
        the file."""
        if self.eof:
            return False
        data = self.f.read(size or self.chunk)
        if not data:
            self.eof = True
            return False
        if self.i:
            self.offset += self.i
            self.s, self.i = self.s[self.i:] + data, 0
        else:
            self.s += data
        return True

    def skip_ws(self):
        while True:
            self.i = _WS.match(self.s, self.i).end()
            if self.i < len(self.s) or not self.more():
                return

    def peek(self) -> str:
        self.skip_ws()
        return self.s[self.i] if self.i < len(self.s) else ""

    def expect(self, chars):
        c = self.peek()
        if c == "" or c not in chars:
            what = "the end of the file" if c == "" else repr(c)
            self.fail(f"expected {' or '.join(map(repr, chars))}, found {what}", self.i)
        self.i += 1
        return c

    def value(self, decoder):
        """Parse one JSON value at the cursor; a value cut by the window's end is read again
        with more text."""
        self.skip_ws()
        grow = self.chunk
        while True:
            try:
                obj, end = decoder.raw_decode(self.s, self.i)
            except json.JSONDecodeError as e:
                # A value longer than the window: read as much again as the window holds, so
                # that a value of n characters is parsed O(log n) times, not n / chunk times.
                grow = max(grow, len(self.s) - self.i)
                if self.more(grow):
                    continue
                self.fail(e.msg, e.pos)
            # a number, true/false/null may go on in the next chunk
            if end == len(self.s) and self.more():
                continue
            self.i = end
            return obj

    def fail(self, msg, pos):
        """Raise StreamError at window position `pos`, with its line and column (the text
        before the window is read again to count them: errors are rare, lines many)."""
        at = self.offset + pos
        before = self.s[:pos]
        if self.offset:
            self.f.seek(0)
            before = self.f.read(self.offset) + before
        line = before.count("\n") + 1
        column = at - (before.rfind("\n") + 1) + 1
        raise StreamError(f"{msg}: line {line} column {column} (char {at})")


def read_object_streaming(f, field, start, chunk=None):
    """Parse the JSON object in text file `f`, handing the members of its top-level field
    `field` (an object) over one by one instead of keeping them: when that object begins,
    ``start(fields)`` is called with the top-level fields read so far (a dict that the later
    ones are added to) and returns a callable taking (key, value), called for each member in
    file order. Returns (the other top-level fields as a dict, whether `field` was such an
    object; when it is anything else it is returned among the others). A top-level field given
    twice is an error, and so is a key repeated inside a value (RepeatedKey); the members of
    `field` are not checked for repeated keys (the caller counts them). A UTF-8 byte order
    mark is skipped. Raises StreamError for text that is not JSON, and NotAnObject for JSON that
    is not an object."""
    text = _Text(f, chunk or CHUNK_CHARS)
    decoder = DECODER
    if text.peek() != "{":
        rest = text.s[text.i:] + f.read()
        try:
            value = decoder.decode(rest)
        except json.JSONDecodeError as e:
            text.offset, text.s, text.i = text.offset + text.i, rest, 0
            text.fail(e.msg, e.pos)
        raise NotAnObject(value)
    text.i += 1
    header, streamed = {}, False
    if text.peek() == "}":
        text.i += 1
    else:
        while True:
            if text.peek() != '"':
                text.fail("expected a field name in double quotes", text.i)
            key = text.value(decoder)
            text.expect(":")
            if key in header or key == field and streamed:
                raise RepeatedKey(f"key {key!r} appears twice in one object")
            if key == field and text.peek() == "{":
                text.i += 1
                _members(text, decoder, start(header))
                streamed = True
            else:
                header[key] = text.value(decoder)
            if text.expect(",}") == "}":
                break
    if text.peek() != "":
        text.fail("extra data after the top-level object", text.i)
    return header, streamed


#: A member's key and colon (and the blanks before its value), for keys without escapes.
_KEY = re.compile(r'[ \t\n\r]*"([^"\\\x00-\x1f]*)"[ \t\n\r]*:[ \t\n\r]*')
_NEXT = re.compile(r"[ \t\n\r]*([,}])")


def _members(text, decoder, on_member):
    if text.peek() == "}":
        text.i += 1
        return
    key_at, next_at, scan = _KEY.match, _NEXT.match, decoder.scan_once
    while True:
        # The usual member in one go: a plain key, a value that ends inside the window, and
        # the comma or brace after it; anything else goes the careful way below.
        s = text.s
        m = key_at(s, text.i)
        if m is not None:
            try:
                value, end = scan(s, m.end())
            except (StopIteration, json.JSONDecodeError):
                end = len(s)
            if end < len(s):
                after = next_at(s, end)
                if after is not None:
                    on_member(m.group(1), value)
                    text.i = after.end()
                    if after.group(1) == "}":
                        return
                    continue
        if m is not None:
            key, text.i = m.group(1), m.end()
        else:  # an escaped key, or the window ends inside it
            if text.peek() != '"':
                text.fail("expected a key in double quotes", text.i)
            key = text.value(decoder)
            text.expect(":")
        on_member(key, text.value(decoder))
        if text.expect(",}") == "}":
            return


@contextmanager
def cycle_collector_paused():
    """Pause Python's cycle collector while large acyclic JSON documents are built or walked:
    reference counting frees them, and the collector would only rescan millions of containers
    over and over (half of json.load's time on a 300,000-video file, a third of check's)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def json_errors(path, error, *, missing=None, what="file", invalid=(ValueError,)):
    """Turn what reading a JSON file at `path` can raise into `error` (an exception class)
    naming the file and the reason: `missing` (default `error`) when it does not exist, `error`
    when it cannot be read, repeats a key, nests too deeply or is not JSON (`invalid`)."""
    try:
        yield
    except FileNotFoundError:
        raise (missing or error)(f"{path}: no such {what}") from None
    except OSError as e:
        raise error(f"{path}: cannot be read: {e.strerror}") from None
    except RepeatedKey as e:
        raise error(f"{path}: {e} (readers differ on which value to keep; give it "
                    f"once)") from None
    except RecursionError:
        raise error(f"{path}: nested too deeply to read (a JSON {what} needs a few levels, "
                    f"this one over {sys.getrecursionlimit()})") from None
    except invalid as e:
        raise error(f"{path}: not valid JSON: {e}") from None
