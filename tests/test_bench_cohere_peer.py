"""bench/phase_cohere_peer.py: cohere's configuration matches fastem's iteration budget."""

import re

import pytest

from bench.phase_cohere_peer import COHERE_VARIANTS, cohere_params


def _iterations(sequence: str) -> int:
    m = re.fullmatch(r"3\*\(20\*ER\+(\d+)\*HIO\)\+(\d+)\*ER", sequence)
    assert m, sequence
    return 3 * (20 + int(m.group(1))) + int(m.group(2))


@pytest.mark.parametrize("iterations", [100, 300, 600, 601, 1000])
def test_sequence_has_the_requested_iterations_and_ends_with_er(iterations):
    p = cohere_params(iterations, shrink_wrap=False)
    assert _iterations(p["algorithm_sequence"]) == iterations
    assert "shrink_wrap_trigger" not in p and p["phc_trigger"] == [0, 1, 310]


def test_shrink_wrap_and_phase_range_options():
    p = cohere_params(600, shrink_wrap=True, phase_range=0.2)
    assert p["shrink_wrap_trigger"] == [10, 1] and p["shrink_wrap_threshold"] == 0.1
    assert p["phc_trigger"] == [0, 1] and p["phc_phase_min"] == -0.2 and p["phc_phase_max"] == 0.2
    assert [name for name, _, _ in COHERE_VARIANTS] == ["cohere", "cohere+mask", "cohere+mask, phase 0.2"]
    with pytest.raises(SystemExit):
        cohere_params(50, shrink_wrap=False)
