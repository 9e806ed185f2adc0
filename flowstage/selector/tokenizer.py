"""Selector text → tokens, with Calico's lexical rules (calico-semantics.md §1.1) and a position on each token.

Calico's tokenizer runs over the whole input before the parser starts, so a lexical error anywhere wins
over a grammar error earlier in the text; `tokenize` does the same.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from flowstage.selector.errors import SelectorError

MAX_LABEL_LENGTH = 512
MAX_SELECTOR_LENGTH = 65_536  # far beyond any real policy; keeps hostile input bounded

_IDENTIFIER_CHARS = "A-Za-z0-9_./-"
_IDENTIFIER = re.compile(f"[{_IDENTIFIER_CHARS}]+")
_WHITESPACE = re.compile("[ \t]*")
# Operator words are only looked for right after a label. Each must end at a word boundary; for the
# two-word forms Calico skips spaces and tabs after the last word before checking that boundary.
_OPERATOR_WORD = re.compile(
    rf"(?P<contains>contains)(?![{_IDENTIFIER_CHARS}])"
    rf"|(?P<in>in)(?![{_IDENTIFIER_CHARS}])"
    rf"|(?:(?P<starts>starts[ \t]*with)|(?P<ends>ends[ \t]*with)|(?P<notin>not[ \t]*in))"
    rf"(?![ \t]*[{_IDENTIFIER_CHARS}])[ \t]*"
)


class TokenKind(enum.Enum):
    """Token kinds, valued with Calico's names (`TokLabel` → "Label")."""

    LABEL = "Label"
    STRING = "StringLiteral"
    LBRACE = "LBrace"
    RBRACE = "RBrace"
    COMMA = "Comma"
    EQ = "Eq"
    NE = "Ne"
    IN = "In"
    NOT = "Not"
    NOT_IN = "NotIn"
    CONTAINS = "Contains"
    STARTS_WITH = "StartsWith"
    ENDS_WITH = "EndsWith"
    ALL = "All"
    HAS = "Has"
    LPAREN = "LParen"
    RPAREN = "RParen"
    AND = "And"
    OR = "Or"
    GLOBAL = "Global"
    EOF = "EOF"


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    position: int  # 0-based index of the token's first character; len(text) for EOF
    value: str = ""  # the label, the string literal's content, or the key inside has(...)

    def __str__(self) -> str:
        # Calico's rendering in parser messages, e.g. `TokRParen()` or `TokLabel(app)`.
        return f"Tok{self.kind.value}({self.value})"


_SINGLE_CHAR = {
    "(": TokenKind.LPAREN,
    ")": TokenKind.RPAREN,
    "{": TokenKind.LBRACE,
    "}": TokenKind.RBRACE,
    ",": TokenKind.COMMA,
}
_DOUBLE_CHAR = {"=": ("==", TokenKind.EQ), "&": ("&&", TokenKind.AND), "|": ("||", TokenKind.OR)}
_OPERATOR_KIND = {
    "contains": TokenKind.CONTAINS,
    "in": TokenKind.IN,
    "starts": TokenKind.STARTS_WITH,
    "ends": TokenKind.ENDS_WITH,
    "notin": TokenKind.NOT_IN,
}
_FUNCTIONS = (("all(", TokenKind.ALL), ("global(", TokenKind.GLOBAL))


def tokenize(text: str) -> list[Token]:
    """All tokens of `text`, ending with EOF; raises SelectorError at the first lexical problem."""
    if len(text) > MAX_SELECTOR_LENGTH:
        raise SelectorError(
            f"selector too long: {len(text):,} characters (at most {MAX_SELECTOR_LENGTH:,} are accepted)",
            text,
            MAX_SELECTOR_LENGTH,
        )
    tokens: list[Token] = []
    append = tokens.append
    end = len(text)
    i = 0
    while True:
        i = _WHITESPACE.match(text, i).end()
        if i == end:
            append(Token(TokenKind.EOF, end))
            return tokens
        ch = text[i]
        if ch in _SINGLE_CHAR:
            append(Token(_SINGLE_CHAR[ch], i))
            i += 1
        elif ch == '"' or ch == "'":
            # No escapes: the literal ends at the next occurrence of its own quote.
            close = text.find(ch, i + 1)
            if close < 0:
                raise SelectorError("unterminated string", text, i)
            append(Token(TokenKind.STRING, i, text[i + 1 : close]))
            i = close + 1
        elif ch in _DOUBLE_CHAR:
            pair, kind = _DOUBLE_CHAR[ch]
            if not text.startswith(pair, i):
                raise SelectorError(f"expected {pair}", text, i)
            append(Token(kind, i))
            i += 2
        elif ch == "!":
            if text.startswith("!=", i):
                append(Token(TokenKind.NE, i))
                i += 2
            else:
                append(Token(TokenKind.NOT, i))
                i += 1
        elif tokens and tokens[-1].kind is TokenKind.LABEL:
            i = _operator_after_label(text, i, tokens)
        elif text.startswith("has(", i):
            i = _has(text, i, tokens)
        else:
            for keyword, kind in _FUNCTIONS:
                if text.startswith(keyword, i):
                    close = _WHITESPACE.match(text, i + len(keyword)).end()
                    if not text.startswith(")", close):
                        raise SelectorError(f"no closing ')' after {keyword}", text, close)
                    append(Token(kind, i))
                    i = close + 1
                    break
            else:
                label = _identifier(text, i)
                append(Token(TokenKind.LABEL, i, label))
                i += len(label)


def _operator_after_label(text: str, i: int, tokens: list[Token]) -> int:
    found = _OPERATOR_WORD.match(text, i)
    if found is None:
        reason = f'expected operator after label "{tokens[-1].value}"'
        if text[i] in "\r\n":
            reason += " (a selector is one line: only spaces and tabs may separate tokens)"
        raise SelectorError(reason, text, i)
    tokens.append(Token(_OPERATOR_KIND[found.lastgroup or ""], i))
    return found.end()


def _has(text: str, i: int, tokens: list[Token]) -> int:
    start = _WHITESPACE.match(text, i + len("has(")).end()
    label = _identifier(text, start)
    close = _WHITESPACE.match(text, start + len(label)).end()
    if not text.startswith(")", close):
        raise SelectorError("no closing ')' after has(", text, close)
    tokens.append(Token(TokenKind.HAS, i, label))
    return close + 1


def _identifier(text: str, i: int) -> str:
    found = _IDENTIFIER.match(text, i)
    if found is None:
        reason = "expected identifier"
        if text[i] in "\r\n":
            reason += " (a selector is one line: only spaces and tabs may separate tokens)"
        raise SelectorError(reason, text, i)
    label = found.group()
    if len(label) > MAX_LABEL_LENGTH:
        raise SelectorError(
            f"label too long: {label[:32]}… ({len(label)} characters; a label key has at most "
            f"{MAX_LABEL_LENGTH})",
            text,
            i,
        )
    return label


def is_label_key(key: str) -> bool:
    """Whether `key` can be written in a selector (Calico's ValidLabel): 1–512 identifier characters."""
    return 0 < len(key) <= MAX_LABEL_LENGTH and _IDENTIFIER.fullmatch(key) is not None
