"""Remark 3.2 of ../shared/seeds/001_ef80d34948c98c54.txt: MU-ASCC with practical codes. The
same optimiser (JRPB) plans with the BER curves of the testbed's own LDPC + QAM schemes,
measured through the PHY (``models/digital/bler-awgn.json``, :meth:`BlerTable.bit_error_rate`),
in place of finite-blocklength random coding.

A scheme has a fixed rate, so for each user the optimiser gets one measured curve and eq. (19)
caps the source rate at T x its spectral efficiency. Which schemes: at the SINRs of the
finite-blocklength plan, each scheme's measured BER and the best codec it carries predict the
user's distortion; the ``CANDIDATES`` best schemes per user are kept, JRPB runs on every pair,
and the best result of (P1) is the plan. (Only the schemes near the finite-blocklength code
rate would not do: real codes need more SINR than random coding at the same rate, so those
are often all past their waterfall.)
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np

from testbed.optim.fbl import MeasuredBer
from testbed.optim.mu_ascc import MuAsccProblem, Solution, optimise
from testbed.systems.digital.bler import BlerTable, spectral_efficiency

CANDIDATES = 2  # schemes per user tried around its finite-blocklength code rate


@dataclass(frozen=True)
class PracticalPlan:
    """The best JRPB solution with measured curves and the scheme (``"<code>/<modulation>"``) per user."""

    solution: Solution
    mcs: tuple[str, ...]


def measured_ber(table: BlerTable, mcs: str) -> MeasuredBer:
    """The optimiser's BER model of one scheme: its measured curve at its spectral efficiency."""
    return MeasuredBer(lambda sinr_db: table.bit_error_rate(mcs, sinr_db), spectral_efficiency(mcs))


def _fits(problem: MuAsccProblem, user: int, mcs: str) -> bool:
    """Whether the user's lowest codec fits its budget at this scheme's rate (eq. (19))."""
    cap = spectral_efficiency(mcs) * float(problem.channel_uses_per_pixel[user])
    return cap >= float(problem.distortion_models[user].rates_bpp[0])


def predicted_distortion(problem: MuAsccProblem, user: int, sinr_linear: float, table: BlerTable, mcs: str) -> float:
    """The user's distortion (eq. (26)) with scheme ``mcs`` at ``sinr_linear``: its measured BER
    and the best codec rate within T x its spectral efficiency (inf when none fits)."""
    if not _fits(problem, user, mcs):
        return float("inf")
    model = problem.distortion_models[user]
    cap = spectral_efficiency(mcs) * float(problem.channel_uses_per_pixel[user])
    log_ber = float(np.log10(table.bit_error_rate(mcs, 10.0 * np.log10(max(sinr_linear, 1e-30)))))
    return min(float(model.distortion(float(r), log_ber)) for r in model.rates_bpp if r <= cap * (1 + 1e-12))


def candidates(problem: MuAsccProblem, user: int, sinr_linear: float, table: BlerTable, names: list[str],
               count: int = CANDIDATES) -> list[str]:
    """The ``count`` schemes of lowest predicted distortion for ``user`` at ``sinr_linear``
    (ties to the faster scheme); only schemes that carry the user's lowest codec."""
    scored = sorted((predicted_distortion(problem, user, sinr_linear, table, m), -spectral_efficiency(m), m)
                    for m in names)
    return [m for d, _, m in scored if np.isfinite(d)][:count]


def practical_plan(problem: MuAsccProblem, fbl: Solution, table: BlerTable, names: list[str]) -> PracticalPlan | None:
    """JRPB with measured curves for the candidate scheme pairs at the SINRs of the
    finite-blocklength plan ``fbl`` of ``problem``; None when some user has no scheme that
    carries its lowest codec."""
    per_user = [candidates(problem, i, float(fbl.sinr_linear[i]), table, names) for i in range(problem.users)]
    best: PracticalPlan | None = None
    for pair in itertools.product(*per_user):
        measured = replace(problem, ber_models=tuple(measured_ber(table, m) for m in pair))
        solution = optimise(measured, "round_down", starts=[fbl.powers_w])
        if best is None or solution.weighted_distortion < best.solution.weighted_distortion:
            best = PracticalPlan(solution, tuple(pair))
    return best
