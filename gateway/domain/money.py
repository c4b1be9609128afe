"""Money as integer micro-USD: exact conversion from configured dollars and display formatting.

Every amount the gateway stores, compares or adds is an ``int`` of micro-USD (1 USD = 1_000_000).
Floats appear only where configuration is parsed (converted exactly through ``Decimal``) and
where text is rendered. Pure: imports only the standard library.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, DecimalException, InvalidOperation, localcontext

MICROS_PER_USD = 1_000_000
MIN_DECIMALS = 2

_ONE_MICRO = Decimal(1)
_CONVERSION_PRECISION = 60  # digits: enough for any sane amount; larger ones are rejected


def usd_to_micros(value: float | int | str | Decimal) -> int:
    """``value`` US dollars as micro-USD, exact, rounded half-up to the nearest micro.

    Floats go through their shortest ``repr`` (``0.0123`` -> ``Decimal("0.0123")``), so the
    binary approximation never leaks in. Negative, NaN, infinite, boolean, malformed or
    absurdly large values raise ``ValueError``.
    """
    amount = _to_decimal(value)
    if not amount.is_finite():
        raise ValueError(f"A money amount must be finite; got {value!r}.")
    if amount < 0:
        raise ValueError(f"A money amount must not be negative; got {value!r}.")
    with localcontext() as context:
        context.prec = _CONVERSION_PRECISION
        try:
            micros = (amount * MICROS_PER_USD).quantize(_ONE_MICRO, rounding=ROUND_HALF_UP)
        except DecimalException:  # Overflow, or more digits than the precision holds
            raise ValueError(f"A money amount is too large: {value!r}.") from None
    return int(micros)


def micros_to_usd_str(micros: int) -> str:
    """Plain decimal dollars for headers and JSON: at least two decimals, no trailing zeros
    beyond them (770000 -> "0.77", 12300 -> "0.0123", 1000000 -> "1.00", 0 -> "0.00")."""
    sign = "-" if micros < 0 else ""
    dollars, fraction = divmod(abs(micros), MICROS_PER_USD)
    decimals = f"{fraction:06d}".rstrip("0").ljust(MIN_DECIMALS, "0")
    return f"{sign}{dollars}.{decimals}"


def format_usd(micros: int) -> str:
    """Dollars for people: "$1.23", "$0.0123", "$0.000001", "-$2.50"."""
    sign = "-" if micros < 0 else ""
    return f"{sign}${micros_to_usd_str(abs(micros))}"


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"A money amount must be a number, not a boolean; got {value!r}.")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"A money amount must be a decimal number; got {value!r}.") from None
    raise ValueError(f"A money amount must be a number; got {type(value).__name__}.")
