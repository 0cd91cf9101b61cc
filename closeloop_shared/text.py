"""Text hygiene for values that end up where a stray character changes their meaning."""
import re

# Characters that end or break an e-mail header line, or make it read otherwise than it
# holds: C0 controls (CR, LF, TAB, NUL, ESC ...), DEL, C1 controls (NEL ...), the Unicode
# line and paragraph separators, the bidirectional marks, embeddings, overrides and
# isolates (U+061C, U+200E/F, U+202A-E, U+2066-9) that can show a name reversed, and lone
# surrogates (JSON "\ud800" decodes to one), which no mail encoder can write.
_LINE_BREAKS = re.compile("[\r\n\t\v\f\x85\u2028\u2029]+")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SPACES = re.compile(r"\s{2,}")


def header_safe(text):
    """`text` fit for an e-mail header (a display name in To:, a Subject): line breaks,
    tabs and the Unicode line/paragraph separators become one space, the other control
    characters, bidi controls and lone surrogates are dropped, runs of whitespace
    collapse to one space and the ends are trimmed. None gives "".

    Notify puts the names of customers and staff, which arrive from web forms, POS and CRM
    systems and chat channels, into headers: a CR/LF in a name must never start a header
    of its own (header injection), a U+202E never turn the name around.

    >>> header_safe("刘女士\\r\\nBcc: attacker@example.com")
    '刘女士 Bcc: attacker@example.com'
    """
    if text is None:
        return ""
    text = _UNSAFE.sub("", _LINE_BREAKS.sub(" ", str(text)))
    return _SPACES.sub(" ", text).strip()
