"""What the compiler raises: a structure it does not compile, a kind it cannot explain."""


class ExplanationUnavailable(ValueError):
    """The model kind has no per-feature contributions."""


class Unsupported(Exception):
    """The pipeline has a structure the fast path does not compile."""


def require(condition: bool, reason: str) -> None:
    """Raise `Unsupported(reason)` unless `condition` holds."""
    if not condition:
        raise Unsupported(reason)
