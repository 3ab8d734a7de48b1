"""Model-agnostic Shapley values of raw fields: permutation sampling against a background sample.

For kinds without exact contributions (MLP, SVC). A customer's fields are switched one at a time,
in a random order, from background customers' values to the customer's own; each field gets the
mean change of the model's output it caused. Orders come in antithetic pairs (an order and its
reverse), which cancels much of the sampling error. Whatever the orders, the contributions add
up exactly to the output minus the mean output on the background (the base value): each order's
changes telescope. The same customer always gets the same answer (a fixed seed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

#: Orders per customer (half of them the reverses of the others).
PERMUTATIONS = 8
#: Background customers kept with a trained model (drawn at random from its training split).
BACKGROUND_ROWS = 50


def permutation_shapley(
    output_of: Callable[[dict[str, np.ndarray], int], np.ndarray],
    customers: Mapping[str, Sequence[Any]],
    background: Mapping[str, Sequence[Any]],
    fields: Sequence[str],
    permutations: int = PERMUTATIONS,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(contributions (n, fields), base values (n,)) of `output_of(columns, rows)`.

    `customers` and `background` map each field to its values, one per row.
    """
    width, rows = len(fields), len(next(iter(customers.values()), []))
    background = {f: np.asarray(background[f]) for f in fields}
    size = len(background[fields[0]])
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(width) for _ in range(max(permutations // 2, 1))]
    orders = np.array(orders + [order[::-1] for order in orders])
    rank = np.argsort(orders, axis=1)  # rank[m, f]: the step at which field f is switched in order m
    steps = np.arange(width + 1)
    switched = rank[:, None, :] < steps[None, :, None]  # (orders, steps, fields)
    contributions, bases = np.empty((rows, width)), np.empty(rows)
    for row in range(rows):
        columns = {
            field: np.where(
                switched[:, :, i, None], np.asarray([customers[field][row]]), background[field][None, None, :]
            ).reshape(-1)
            for i, field in enumerate(fields)
        }
        total = len(orders) * (width + 1) * size
        values = (
            np.asarray(output_of(columns, total), np.float64)
            .reshape(len(orders), width + 1, size)
            .mean(axis=2)
        )
        changes = values[:, 1:] - values[:, :-1]  # (orders, steps): the field switched at that step
        contributions[row] = np.take_along_axis(changes, rank, axis=1).mean(axis=0)
        bases[row] = values[:, 0].mean()
    return contributions, bases
