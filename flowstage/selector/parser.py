"""Tokens → syntax tree, following Calico's recursive-descent parser (lcg/selector/parser/parser.go).

Error reasons are Calico's; each error also carries the position of the token it is about.
"""

from __future__ import annotations

from flowstage.selector import nodes
from flowstage.selector.errors import SelectorError
from flowstage.selector.tokenizer import Token, TokenKind, tokenize

# Parenthesis nesting accepted; real selectors use a handful. The bound keeps every later stage
# (matcher code generation, printing, SQL) far from Python's recursion and parser limits.
MAX_NESTING = 40

_COMPARISONS: dict[TokenKind, type[nodes.LabelComparison]] = {
    TokenKind.EQ: nodes.LabelEquals,
    TokenKind.NE: nodes.LabelNotEquals,
    TokenKind.CONTAINS: nodes.LabelContains,
    TokenKind.STARTS_WITH: nodes.LabelStartsWith,
    TokenKind.ENDS_WITH: nodes.LabelEndsWith,
}
_SET_OPERATORS: dict[TokenKind, type[nodes.LabelSetMembership]] = {
    TokenKind.IN: nodes.LabelIn,
    TokenKind.NOT_IN: nodes.LabelNotIn,
}
_SHOWN_TRAILING_TOKENS = 6


def parse(text: str) -> nodes.Node:
    """The syntax tree of `text`; an empty or blank selector is `all()`. Raises SelectorError."""
    return _Parser(text, tokenize(text)).parse_root()


class _Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.nesting = 0

    def error(self, reason: str, token: Token) -> SelectorError:
        return SelectorError(reason, self.text, token.position)

    def parse_root(self) -> nodes.Node:
        if self.tokens[0].kind is TokenKind.EOF:
            return nodes.AllNode()
        root = self.parse_or()
        rest = self.tokens[self.i :]
        if len(rest) != 1:
            shown = " ".join(str(t) for t in rest[:_SHOWN_TRAILING_TOKENS])
            if len(rest) > _SHOWN_TRAILING_TOKENS:
                shown += " …"
            raise self.error(f"unexpected content at end of selector [{shown}]", rest[0])
        return root

    def parse_or(self) -> nodes.Node:
        operands = [self.parse_and()]
        while self.tokens[self.i].kind is TokenKind.OR:
            self.i += 1
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else nodes.Or(tuple(operands))

    def parse_and(self) -> nodes.Node:
        operands = [self.parse_operation()]
        while self.tokens[self.i].kind is TokenKind.AND:
            self.i += 1
            operands.append(self.parse_operation())
        return operands[0] if len(operands) == 1 else nodes.And(tuple(operands))

    def parse_operation(self) -> nodes.Node:
        """One primary with any number of leading `!`; an even count cancels, as in Calico."""
        tokens = self.tokens
        negated = False
        while tokens[self.i].kind is TokenKind.NOT:
            negated = not negated
            self.i += 1
        node = self.parse_primary()
        return nodes.Not(node) if negated else node

    def parse_primary(self) -> nodes.Node:
        tokens = self.tokens
        token = tokens[self.i]
        kind = token.kind
        if kind is TokenKind.HAS:
            self.i += 1
            return nodes.HasLabel(token.value)
        if kind is TokenKind.ALL:
            self.i += 1
            return nodes.AllNode()
        if kind is TokenKind.GLOBAL:
            self.i += 1
            return nodes.GlobalNode()
        if kind is TokenKind.LABEL:
            return self.parse_label_operation()
        if kind is TokenKind.LPAREN:
            if self.nesting >= MAX_NESTING:
                raise self.error(
                    f"selector nested too deeply: more than {MAX_NESTING} levels of parentheses", token
                )
            self.nesting += 1
            self.i += 1
            inner = self.parse_or()
            closing = tokens[self.i]
            if closing.kind is not TokenKind.RPAREN:
                raise self.error("expected )", closing)
            self.i += 1
            self.nesting -= 1
            return inner
        raise self.error(f"unexpected token: {token}", token)

    def parse_label_operation(self) -> nodes.Node:
        tokens = self.tokens
        label, operator = tokens[self.i], tokens[self.i + 1]
        if operator.kind is TokenKind.EOF:
            raise self.error("unexpected end of string looking for op", operator)
        operand = tokens[self.i + 2]
        if operator.kind in _COMPARISONS:
            if operand.kind is not TokenKind.STRING:
                raise self.error("expected string", operand)
            self.i += 3
            return _COMPARISONS[operator.kind](label.value, operand.value)
        if operator.kind in _SET_OPERATORS:
            if operand.kind is not TokenKind.LBRACE:
                raise self.error("expected set literal", operand)
            self.i += 3
            values = self.parse_set_members()
            return _SET_OPERATORS[operator.kind](label.value, tuple(sorted(set(values))))
        raise self.error(f"expected == or != not: {operator}", operator)

    def parse_set_members(self) -> list[str]:
        """Strings separated by commas, an optional trailing comma, then `}`."""
        tokens = self.tokens
        values: list[str] = []
        while tokens[self.i].kind is TokenKind.STRING:
            values.append(tokens[self.i].value)
            self.i += 1
            if tokens[self.i].kind is not TokenKind.COMMA:
                break
            self.i += 1
        if tokens[self.i].kind is not TokenKind.RBRACE:
            raise self.error("expected }", tokens[self.i])
        self.i += 1
        return values
