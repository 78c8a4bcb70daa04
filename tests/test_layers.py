import pytest

from lmtransfer.config.layers import resolve_layers


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("all", [0, 1, 2, 3, 4, 5, 6]),
        ("last4", [3, 4, 5, 6]),
        ("last", [6]),
        ("second_to_last", [5]),
        ("embeddings", [0]),
        (0, [0]),
        (-1, [6]),
        ([-1, -2, 0], [0, 5, 6]),
        ("-1,-2", [5, 6]),
        ([3, 3, -4], [3]),
    ],
)
def test_resolve_layers(spec, want):
    assert resolve_layers(spec, 6) == want


@pytest.mark.parametrize("spec", [7, -8, [0, 9], "last5", []])
def test_unknown_layers_are_rejected(spec):
    with pytest.raises(ValueError):
        resolve_layers(spec, 6)


def test_error_names_index_and_range():
    with pytest.raises(ValueError, match=r"layer 9 does not exist: this encoder has layers 0\.\.2"):
        resolve_layers([9], 2)
