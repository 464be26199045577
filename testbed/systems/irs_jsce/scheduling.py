"""User scheduling of IRS-JSCE: the max-min objective over T half-duplex slots, the DDPG
scheduler of XD-DRL (stable-baselines3), and the references it is measured against.

Reference: ../shared/seeds/000_5c86833aa1606c01.txt (Sec. III-B, eqs. (14), (17)-(22), Algorithm 1).

A slot's schedule B_t is a transmitter set T (every TX addresses every non-TX user; half duplex,
(14c)); the semantic similarity a link gets in a slot depends on the set (how many streams share
the slot), so the scheduler works on a table ``xi[set][link]`` measured with the trained networks
(:func:`measure_table`, on training crops, never the held-out photographs).

MDP (Sec. III-B): state o(t) in N^K, the schedule history: o(t)[j] = o(t-1)[j] + the links of
slot t-1 that user j took part in (fed to the networks divided by T); action a in [0, 1]^K, the
set {j : a_j > 1/2} (none above: the largest alone; all above: all but the smallest); reward eq.
(18), the minimum over all ordered pairs of the similarity accumulated so far. DDPG (actor and
critic, target networks with soft updates tau, replay buffer, Gaussian exploration noise) is
stable-baselines3's; ``replay_every`` is the paper's R_f.

References for the scheduler's figure (eq. (14), :func:`objective`): the best schedule by
exhaustive search over the multisets of T sets (:func:`best_schedule`, order does not change
(14)), random schedules, and round robin over the single-TX sets (TDMA of whole slots).
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import gymnasium
import numpy as np

from testbed.errors import ConfigError
from testbed.systems.irs_jsce.channel import slot_links

Link = tuple[int, int]
TxSet = tuple[int, ...]


def all_links(n_users: int) -> list[Link]:
    """Every ordered pair (r, k), r != k, in row order."""
    return [(r, k) for r in range(n_users) for k in range(n_users) if r != k]


def table_matrix(table: dict[TxSet, dict[Link, float]], n_users: int) -> tuple[list[TxSet], np.ndarray]:
    """(sets, float64 (n_sets, K (K - 1))): each set's similarity on every ordered pair (0 where unserved)."""
    sets, links = sorted(table, key=lambda s: (len(s), s)), all_links(n_users)
    column = {link: i for i, link in enumerate(links)}
    matrix = np.zeros((len(sets), len(links)))
    for i, txs in enumerate(sets):
        for link, value in table[txs].items():
            matrix[i, column[tuple(link)]] = value
    return sets, matrix


def objective(schedule: Sequence[TxSet], table: dict[TxSet, dict[Link, float]], n_users: int) -> float:
    """Eq. (14) of one schedule: min over ordered pairs of (1/T) sum_t of the pair's value in slot t."""
    return _score(schedule, *table_matrix(table, n_users))


def _score(schedule: Sequence[TxSet], sets: list[TxSet], matrix: np.ndarray) -> float:
    """Eq. (14) of ``schedule`` on a :func:`table_matrix`."""
    rows = [sets.index(tuple(sorted(txs))) for txs in schedule]
    return float(matrix[rows].sum(axis=0).min() / len(schedule))


def best_schedule(table: dict[TxSet, dict[Link, float]], n_users: int, slots: int) -> tuple[list[TxSet], float]:
    """The schedule maximising eq. (14), by exhaustive search over multisets of ``slots`` sets.

    Vectorised over the C(n_sets + slots - 1, slots) multisets (278 256 for K = 5, T = 5)."""
    sets, matrix = table_matrix(table, n_users)
    combos = np.array(list(itertools.combinations_with_replacement(range(len(sets)), slots)), np.int32)
    totals = np.zeros((len(combos), matrix.shape[1]))
    for t in range(slots):
        totals += matrix[combos[:, t]]
    scores = totals.min(axis=1) / slots
    best = int(np.argmax(scores))
    return [sets[i] for i in combos[best]], float(scores[best])


def round_robin(n_users: int, slots: int) -> list[TxSet]:
    """TDMA of whole slots: user t mod K transmits alone in slot t."""
    return [(t % n_users,) for t in range(slots)]


def action_to_set(action: np.ndarray) -> TxSet:
    """The TX set of an action in [0, 1]^K (module docstring): never empty, never every user."""
    action = np.asarray(action, np.float64).reshape(-1)
    chosen = [j for j in range(len(action)) if action[j] > 0.5]
    if not chosen:
        chosen = [int(np.argmax(action))]
    if len(chosen) == len(action):
        chosen.remove(int(np.argmin(action)))
    return tuple(chosen)


class ScheduleEnv(gymnasium.Env):
    """The scheduling MDP of Sec. III-B over ``slots`` slots on a measured similarity table."""

    def __init__(self, table: dict[TxSet, dict[Link, float]], n_users: int, slots: int,
                 coverage_bonus: float = 0.0) -> None:
        super().__init__()
        if slots < 1:
            raise ConfigError(f"irs_jsce slots = {slots!r} is invalid; allowed: an integer >= 1")
        if not coverage_bonus >= 0:
            raise ConfigError(f"irs_jsce coverage_bonus = {coverage_bonus!r} is invalid; allowed: a number >= 0")
        self.table, self.n_users, self.slots, self.coverage_bonus = table, n_users, slots, coverage_bonus
        self.links = all_links(n_users)
        self.observation_space = gymnasium.spaces.Box(0.0, float(2 * (n_users - 1)), (n_users,), np.float32)
        self.action_space = gymnasium.spaces.Box(0.0, 1.0, (n_users,), np.float32)
        self.reset()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t, self.history = 0, np.zeros(self.n_users)
        self.accumulated = {link: 0.0 for link in self.links}
        self.chosen: list[TxSet] = []
        return self._observation(), {}

    def _observation(self) -> np.ndarray:
        return (self.history / self.slots).astype(np.float32)

    def step(self, action: np.ndarray):
        txs = action_to_set(action)
        for link in slot_links(txs, self.n_users):
            self.accumulated[link] += self.table[txs].get(link, 0.0)
            self.history[list(link)] += 1
        self.chosen.append(txs)
        self.t += 1
        reward = min(self.accumulated.values())  # eq. (18)
        if self.coverage_bonus:  # not the paper's: the share of pairs served so far, a dense signal
            reward += self.coverage_bonus * sum(v > 0 for v in self.accumulated.values()) / len(self.links)
        return self._observation(), float(reward), self.t >= self.slots, False, {"set": txs}


def train_ddpg(table: dict[TxSet, dict[Link, float]], n_users: int, slots: int, timesteps: int, seed: int = 0,
               replay_every: int = 1, tau: float = 0.005, noise_std: float = 0.3, warmup: int = 1000,
               coverage_bonus: float = 0.0):
    """DDPG on :class:`ScheduleEnv` (stable-baselines3; ``warmup`` steps of uniform random actions
    fill the replay buffer first); returns the model and its greedy schedule."""
    from stable_baselines3 import DDPG
    from stable_baselines3.common.noise import NormalActionNoise

    env = ScheduleEnv(table, n_users, slots, coverage_bonus)
    noise = NormalActionNoise(np.zeros(n_users), noise_std * np.ones(n_users))
    model = DDPG("MlpPolicy", env, action_noise=noise, learning_starts=min(warmup, timesteps), batch_size=128,
                 tau=tau, gamma=0.99, train_freq=replay_every, seed=seed, device="cpu", verbose=0)
    model.learn(total_timesteps=timesteps)
    return model, greedy_schedule(model, env)


def greedy_schedule(model, env: ScheduleEnv) -> list[TxSet]:
    """The schedule of the policy without exploration noise."""
    obs, _ = env.reset()
    done = False
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        obs, _, done, _, _ = env.step(action)
    return list(env.chosen)


def random_schedules(n_users: int, slots: int, count: int, seed: int = 0) -> list[list[TxSet]]:
    """``count`` schedules of uniformly drawn TX sets (the 2^K - 2 non-trivial ones)."""
    rng = np.random.default_rng(seed)
    sets = [tuple(u for u in range(n_users) if m >> u & 1) for m in range(1, 2 ** n_users - 1)]
    return [[sets[i] for i in rng.integers(len(sets), size=slots)] for _ in range(count)]


def mean_objective(schedules: Sequence[Sequence[TxSet]], table: dict[TxSet, dict[Link, float]], n_users: int) -> float:
    """Mean of :func:`objective` over schedules; NaN for none."""
    if not schedules:
        return math.nan
    sets, matrix = table_matrix(table, n_users)  # once, not once per schedule
    return float(np.mean([_score(s, sets, matrix) for s in schedules]))
