"""The argument checks of ``course_lib._checks``: what passes, what each rejects.

Every chapter module validates through these functions, so each rule is tested once
here (the chapters' tests check that their public functions name the bad argument).
"""

from __future__ import annotations

import pytest
import torch

from course_lib import _checks as checks


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: checks.check_int(3, "n"), 3),
        (lambda: checks.check_int(0, "index", minimum=0), 0),
        (lambda: checks.check_int(-5, "offset", minimum=None), -5),
        (lambda: checks.check_int(4, "k", minimum=1, maximum=4), 4),
        (lambda: checks.check_seed(0), 0),
        (lambda: checks.check_seeds((0, 7)), [0, 7]),
        (lambda: checks.check_sequence([1, 2], "depths", "ints"), (1, 2)),
        (lambda: checks.check_sequence(range(2), "depths", "ints"), (0, 1)),
        (lambda: checks.check_real(2, "lr", minimum=0.0), 2.0),
        (lambda: checks.check_real(0, "noise", minimum=0.0, strict=False), 0.0),
        (lambda: checks.check_real(-1.5, "offset"), -1.5),
        (lambda: checks.check_eps(1e-300), 1e-300),
        (lambda: checks.check_probability(1, "p"), 1.0),
        (lambda: checks.check_choice("layer", "norm", ("layer", "rms")), "layer"),
        (lambda: checks.check_instance(2, "n", (int, float)), 2),
    ],
)
def test_valid_values_pass_through(call, expected):
    assert call() == expected


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: checks.check_int(2.0, "n"), TypeError, "n must be an int"),
        (
            lambda: checks.check_int(True, "n"),
            TypeError,
            "n must be an int, got bool",
        ),
        (
            lambda: checks.check_int(0, "n"),
            ValueError,
            "n must be an int >= 1, got 0",
        ),
        (
            lambda: checks.check_int(5, "k", maximum=4),
            ValueError,
            r"k must be an int in \[1, 4\]",
        ),
        (
            lambda: checks.check_int(5, "k", minimum=None, maximum=4),
            ValueError,
            "k .* <= 4",
        ),
        (lambda: checks.check_seed(-1), ValueError, "seed must be an int >= 0"),
        (lambda: checks.check_seed("0"), TypeError, "seed must be an int"),
        (lambda: checks.check_seeds(3), TypeError, "seeds must be a sequence"),
        (
            lambda: checks.check_sequence("12", "depths", "ints"),
            TypeError,
            "depths must be a sequence of ints, got str",
        ),
        (
            lambda: checks.check_sequence({1: 2}, "depths", "ints"),
            TypeError,
            "depths must be a sequence of ints, got dict",
        ),
        (
            lambda: checks.check_sequence((), "rates", "positive numbers"),
            ValueError,
            "rates must be a non-empty sequence of positive numbers",
        ),
        (
            lambda: checks.check_key_value(
                torch.zeros(2, 5, 4), torch.zeros(2, 4, 6), 2
            ),
            ValueError,
            r"value must have key's batch size and number of tokens \(2, 5\)",
        ),
        (
            lambda: checks.check_key_value(
                torch.zeros(3, 5, 4), torch.zeros(3, 5, 6), 2
            ),
            ValueError,
            "key must have the query's batch size 2, got 3",
        ),
        (
            lambda: checks.check_self_attn_mask(
                torch.ones(3, 5, dtype=torch.bool), 2, 5, keys=3
            ),
            ValueError,
            r"attn_mask must have shape \(5, 3\) or \(2, 5, 3\)",
        ),
        (
            lambda: checks.check_tokens(
                torch.zeros(3, 2, 6), "query", 8, torch.zeros(1), batch_first=False
            ),
            ValueError,
            r"query must have shape \(T, B, 8\)",
        ),
        (lambda: checks.check_seeds("01"), TypeError, "seeds must be a sequence"),
        (
            lambda: checks.check_seeds([]),
            ValueError,
            "seeds must be a non-empty sequence of ints >= 0",
        ),
        (
            lambda: checks.check_seeds([0, -2]),
            ValueError,
            r"seeds\[1\] must be an int >= 0",
        ),
        (
            lambda: checks.check_real("1", "lr"),
            TypeError,
            "lr must be a real number",
        ),
        (
            lambda: checks.check_real(float("nan"), "lr"),
            ValueError,
            "lr must be finite",
        ),
        (
            lambda: checks.check_real(0.0, "lr", minimum=0.0),
            ValueError,
            "lr must be > 0",
        ),
        (
            lambda: checks.check_real(-0.1, "noise", minimum=0.0, strict=False),
            ValueError,
            "noise must be >= 0",
        ),
        (lambda: checks.check_eps(-1e-9), ValueError, "eps must be >= 0"),
        (lambda: checks.check_eps(float("inf")), ValueError, "eps must be finite"),
        (
            lambda: checks.check_probability(1.5, "dropout"),
            ValueError,
            "dropout must be in",
        ),
        (
            lambda: checks.check_choice(1, "norm", ("layer",)),
            TypeError,
            "norm must be a str",
        ),
        (
            lambda: checks.check_instance("2", "n", (int, float)),
            TypeError,
            "n must be a int or float, got str",
        ),
        (
            lambda: checks.check_choice("rms", "norm", ("layer",)),
            ValueError,
            "norm must be one",
        ),
        (
            lambda: checks.check_float_tensor(torch.ones(3), "x", dim=2),
            ValueError,
            "x must have 2 dimension",
        ),
        (
            lambda: checks.check_rows(torch.ones(3, 0), "weights"),
            ValueError,
            "weights must have at least one entry",
        ),
        (
            lambda: checks.check_dtype([True], "mask", torch.bool, "True = keep"),
            TypeError,
            "mask must be a torch.Tensor of dtype torch.bool, got list",
        ),
        (
            lambda: checks.check_dtype(
                torch.ones(2), "mask", torch.bool, "True = keep"
            ),
            TypeError,
            r"mask must have dtype torch.bool \(True = keep\), got torch.float32",
        ),
        (
            lambda: checks.check_labels(torch.ones(3), "y", 3),
            TypeError,
            "y must have dtype torch.int64",
        ),
        (
            lambda: checks.check_labels(torch.zeros(2, dtype=torch.int64), "y", 3),
            ValueError,
            r"y must have shape \(3,\)",
        ),
        (
            lambda: checks.check_stochastic_matrix(
                torch.ones(2, 3) / 3, "transition"
            ),
            ValueError,
            "transition must be square",
        ),
        (
            lambda: checks.check_stochastic_matrix(torch.ones(2, 2), "transition"),
            ValueError,
            "rows that sum to 1",
        ),
        (
            lambda: checks.check_stochastic_matrix(
                torch.eye(2, dtype=torch.int64), "transition"
            ),
            TypeError,
            "transition must have a floating-point dtype",
        ),
    ],
)
def test_bad_values_raise_a_message_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_stochastic_matrix_is_returned_in_float64():
    p = checks.check_stochastic_matrix(
        torch.full((3, 3), 1 / 3, dtype=torch.float32), "p"
    )
    assert p.dtype == torch.float64
