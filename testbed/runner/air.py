"""Over-the-air runs: the same node processes with hardware radios (UHD, Pluto) at their antennas.

A run is all virtual (ZMQ radios, the channel emulator between them) or all over the air (the
air between them, no emulator process): ``air_mode`` says which, and refuses what the air cannot
do yet with a ConfigError naming the field, the value and what is allowed:

- a mix of virtual and hardware nodes (the emulator cannot feed a hardware radio), or radios at
  different sample rates;
- a sweep (the SNR is what the air and the gains give: one point, set the gains in the radio files);
- a software IRS (it lives in the emulator) and precoded or MU-MIMO uplink TXs (their CSI and
  their stream alignment come from the emulator today).

Over the air the RX counts its own samples from its radio's start, unrelated to the TX's: the
runner marks each RX before a batch is sent and the RX collects ``span_samples`` from that mark
(the batch plus ``latency_samples`` of buffering in both radios and flowgraphs).
"""
from __future__ import annotations

from testbed.config.scenario import Scenario
from testbed.errors import ConfigError
from testbed.runner.graph import tx_mode

HARDWARE_BACKENDS = ("uhd", "pluto")
LATENCY_S = 0.25
"""Upper bound on TX + RX buffering (GNU Radio buffers, IIO/UHD transport buffers, USB)."""
BUFFERED_SAMPLES = 4 * (1 << 16)


def air_mode(scenario: Scenario) -> bool:
    """Whether every node of ``scenario`` has a hardware radio (False: every node is virtual).

    Raises ConfigError for a mixed network or a topology the air cannot run yet (module docstring).
    """
    topo = scenario.network()
    backend = {n.name: scenario.radio_config(n.radio).backend for n in topo.nodes}
    air = sorted(name for name, b in backend.items() if b in HARDWARE_BACKENDS)
    if not air:
        return False
    virtual = sorted(set(backend) - set(air))
    if virtual:
        raise ConfigError(f"topology.nodes: {air} have hardware radios and {virtual} virtual ones; allowed: "
                          "every node virtual (the emulator is the channel) or every node hardware (the air is)")
    problems = []
    rates = {n.name: scenario.radio_config(n.radio).sample_rate_sps for n in topo.nodes}
    if len(set(rates.values())) > 1:
        problems.append(f"topology.nodes: radios at different sample rates {rates}; allowed: one rate for every node")
    if len(topo.points()) > 1:
        problems.append(f"topology.sweep: {len(topo.points())} points; allowed over the air: one (the SNR is "
                        "what the air and the radio files' gains give)")
    if topo.irs is not None:
        problems.append("topology.irs: set; allowed over the air: none (the software IRS lives in the emulator)")
    for node in topo.tx_nodes():
        mode = tx_mode(topo, node.name)[0]
        if mode != "single":
            problems.append(f"topology.nodes.{node.name}: a {mode} TX; allowed over the air: single-stream TXs "
                            "(links and broadcast; precoding and uplink streams need the emulator's CSI and timing)")
    if problems:
        raise ConfigError("\n".join(problems))
    return True


def latency_samples(sample_rate_sps: float) -> int:
    """Samples an RX waits past a batch's own length before it collects (see LATENCY_S)."""
    return int(LATENCY_S * sample_rate_sps) + BUFFERED_SAMPLES
