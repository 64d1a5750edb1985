"""Encoding labels as browsers read them: the WHATWG Encoding Standard's table.

A web page's declared charset is a *label*; browsers accept only the labels of the
Encoding Standard (https://encoding.spec.whatwg.org/#names-and-labels), each naming one
of its encodings. Python's codec registry accepts far more (``utf-7``, ``base64``,
``rot13``...), and decoding a page with one a browser would refuse gives text no reader
ever saw: a UTF-7 title decodes to ``<script>``. So a label is looked up here first;
anything else is "no label" and the caller falls back to its default.

Each WHATWG encoding is decoded by the Python codec that matches it: GBK by gb18030 (the
standard's GBK decoder *is* its gb18030 decoder), Big5 by big5hkscs (the standard's Big5
includes the HKSCS extensions), Shift_JIS by cp932, EUC-KR by cp949 (windows-949).
The "replacement" encoding (ISO-2022-KR, HZ-GB-2312, ISO-2022-CN: labels whose
decoding was a source of script injection) decodes any body to one U+FFFD.
"""

from __future__ import annotations

import codecs

__all__ = ["REPLACEMENT", "whatwg_encoding", "python_codec", "is_allowed_codec", "sniff_bom",
           "decode_replacement", "detect_encoding", "is_text_codec"]

REPLACEMENT = "replacement"

# (WHATWG encoding, Python codec, labels), from https://encoding.spec.whatwg.org/encodings.json
_TABLE: tuple[tuple[str, str | None, str], ...] = (
    ("UTF-8", "utf-8", "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8"),
    ("IBM866", "cp866", "866 cp866 csibm866 ibm866"),
    ("ISO-8859-2", "iso8859_2",
     "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 iso_8859-2:1987 l2 latin2"),
    ("ISO-8859-3", "iso8859_3",
     "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 iso_8859-3:1988 l3 latin3"),
    ("ISO-8859-4", "iso8859_4",
     "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 iso_8859-4:1988 l4 latin4"),
    ("ISO-8859-5", "iso8859_5",
     "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 iso_8859-5 iso_8859-5:1988"),
    ("ISO-8859-6", "iso8859_6",
     "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6 iso-8859-6-e "
     "iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 iso_8859-6:1987"),
    ("ISO-8859-7", "iso8859_7",
     "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 iso8859-7 iso88597 "
     "iso_8859-7 iso_8859-7:1987 sun_eu_greek"),
    ("ISO-8859-8", "iso8859_8",
     "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 iso8859-8 iso88598 "
     "iso_8859-8 iso_8859-8:1988 visual"),
    ("ISO-8859-8-I", "iso8859_8", "csiso88598i iso-8859-8-i logical"),
    ("ISO-8859-10", "iso8859_10", "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6"),
    ("ISO-8859-13", "iso8859_13", "iso-8859-13 iso8859-13 iso885913"),
    ("ISO-8859-14", "iso8859_14", "iso-8859-14 iso8859-14 iso885914"),
    ("ISO-8859-15", "iso8859_15", "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9"),
    ("ISO-8859-16", "iso8859_16", "iso-8859-16"),
    ("KOI8-R", "koi8_r", "cskoi8r koi koi8 koi8-r koi8_r"),
    ("KOI8-U", "koi8_u", "koi8-ru koi8-u"),
    ("macintosh", "mac_roman", "csmacintosh mac macintosh x-mac-roman"),
    ("windows-874", "cp874", "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874"),
    ("windows-1250", "cp1250", "cp1250 windows-1250 x-cp1250"),
    ("windows-1251", "cp1251", "cp1251 windows-1251 x-cp1251"),
    ("windows-1252", "cp1252",
     "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 iso8859-1 iso88591 "
     "iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii windows-1252 x-cp1252"),
    ("windows-1253", "cp1253", "cp1253 windows-1253 x-cp1253"),
    ("windows-1254", "cp1254",
     "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 iso_8859-9:1989 l5 latin5 "
     "windows-1254 x-cp1254"),
    ("windows-1255", "cp1255", "cp1255 windows-1255 x-cp1255"),
    ("windows-1256", "cp1256", "cp1256 windows-1256 x-cp1256"),
    ("windows-1257", "cp1257", "cp1257 windows-1257 x-cp1257"),
    ("windows-1258", "cp1258", "cp1258 windows-1258 x-cp1258"),
    ("x-mac-cyrillic", "mac_cyrillic", "x-mac-cyrillic x-mac-ukrainian"),
    ("GBK", "gb18030", "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk"),
    ("gb18030", "gb18030", "gb18030"),
    ("Big5", "big5hkscs", "big5 big5-hkscs cn-big5 csbig5 x-x-big5"),
    ("EUC-JP", "euc_jp", "cseucpkdfmtjapanese euc-jp x-euc-jp"),
    ("ISO-2022-JP", "iso2022_jp", "csiso2022jp iso-2022-jp"),
    ("Shift_JIS", "cp932", "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis"),
    ("EUC-KR", "cp949",
     "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 ksc5601 ksc_5601 "
     "windows-949"),
    (REPLACEMENT, None, "csiso2022kr hz-gb-2312 iso-2022-cn iso-2022-cn-ext iso-2022-kr replacement"),
    ("UTF-16BE", "utf-16-be", "unicodefffe utf-16be"),
    ("UTF-16LE", "utf-16-le", "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le"),
    # x-user-defined maps 0x80-0xFF to private-use characters (U+F780-U+F7FF), which no
    # title can use; windows-1252 decodes its ASCII identically and the rest readably.
    ("x-user-defined", "cp1252", "x-user-defined"),
)

_BY_LABEL = {label: name for name, _, labels in _TABLE for label in labels.split()}
_CODEC = {name: codec for name, codec, _ in _TABLE}
#: Python codec names (normalised) of the WHATWG encodings: detection may pick only these.
_ALLOWED_CODECS = frozenset(codecs.lookup(c).name for c in _CODEC.values() if c)

_BOMS = ((codecs.BOM_UTF8, "UTF-8"), (codecs.BOM_UTF16_BE, "UTF-16BE"), (codecs.BOM_UTF16_LE, "UTF-16LE"))


def whatwg_encoding(label: str | None) -> str | None:
    """The WHATWG encoding a label names ("get an encoding"), or None for no such label."""
    if not label:
        return None
    # The standard strips ASCII whitespace and compares ASCII case-insensitively.
    return _BY_LABEL.get(label.strip("\t\n\f\r ").lower())


def python_codec(encoding: str) -> str | None:
    """The Python codec decoding a WHATWG encoding (None for "replacement")."""
    return _CODEC[encoding]


def is_allowed_codec(codec: str | None) -> bool:
    """True when a Python codec name is one that some WHATWG encoding decodes with."""
    if not codec:
        return False
    try:
        return codecs.lookup(codec).name in _ALLOWED_CODECS
    except LookupError:
        return False


def sniff_bom(raw: bytes) -> tuple[str, int] | None:
    """(WHATWG encoding, BOM length) when ``raw`` starts with a byte-order mark ("BOM sniff")."""
    for bom, name in _BOMS:
        if raw.startswith(bom):
            return name, len(bom)
    return None


def decode_replacement(raw: bytes) -> str:
    """The "replacement" decoder: one U+FFFD for any non-empty input."""
    return "\ufffd" if raw else ""


def is_text_codec(name: str) -> bool:
    """True when Python has a text codec of that name (not base64, rot13, zlib...)."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        return False
    return getattr(info, "_is_text_encoding", True)


def detect_encoding(raw: bytes) -> str | None:
    """The Python codec that most likely decodes ``raw`` (not UTF-8), or None.

    Chinese text in GBK is common in these notes and pages, and statistical detection
    misreads short Chinese texts (often as Big5 or a Cyrillic code page), so GB18030
    goes first, kept when it decodes without error and yields mostly CJK. Otherwise
    charset-normalizer decides, among the encodings a browser knows only.
    """
    sample = raw[:65536]
    try:
        text = codecs.getincrementaldecoder("gb18030")(errors="strict").decode(sample, final=False)
    except UnicodeDecodeError:
        text = ""
    non_ascii = [ch for ch in text if ord(ch) > 127]
    if non_ascii and sum(_is_cjk(ch) for ch in non_ascii) >= 0.8 * len(non_ascii):
        return "gb18030"
    from charset_normalizer import from_bytes  # imported lazily: rarely needed, slow to import

    best = from_bytes(sample, cp_isolation=None).best()
    return best.encoding if best is not None and is_allowed_codec(best.encoding) else None


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return 0x4E00 <= code <= 0x9FFF or 0x3000 <= code <= 0x303F or 0xFF00 <= code <= 0xFFEF
