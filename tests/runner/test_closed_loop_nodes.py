"""The node side of the closed CSI loop (``adapt: closed_loop``), without processes: the RX's
feedback on a batch's probe (per flow the column and SNR, lost or failed probes left out) and
what a TX's encoder is told from it (the column and the common SNR, or the nominal SNR)."""
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("gnuradio.gr")

from testbed.phy.mimo_frame import frame_stream, payload_symbols  # noqa: E402
from testbed.runner import nodes  # noqa: E402
from testbed.runner.chain import GAP_SAMPLES  # noqa: E402
from testbed.systems.link import LinkSystem  # noqa: E402

H0 = np.array([1 + 1j, 0.5, -0.5j, 2], np.complex64)


def _frame(flow: int, batch: int, ok: bool = True, h: np.ndarray = H0) -> SimpleNamespace:
    return SimpleNamespace(header=SimpleNamespace(user=flow), payload_ok=ok, payload=nodes.probe_payload(batch),
                           h_est=h, noise_var_est=0.01, snr_est_db=12.5 + flow)


def test_probe_feedback_has_each_received_flow_and_the_mean_linear_snr():
    frames = [_frame(0, 5), _frame(1, 5, h=H0 / 2), _frame(2, 5, ok=False), _frame(3, 4), _frame(9, 5)]
    fb = nodes.probe_feedback("bs", 5, {0, 1, 2, 3}, frames)
    # flow 2 failed its CRC, flow 3's probe is of another batch, flow 9 is another RX's
    assert (fb["from"], fb["batch"], sorted(fb["flows"])) == ("bs", 5, ["0", "1"])
    assert fb["flows"]["0"]["csi"] == [[1.0, 1.0], [0.5, 0.0], [0.0, -0.5], [2.0, 0.0]]
    snr0 = np.sum(np.abs(H0) ** 2) / (4 * 0.01)
    assert fb["flows"]["0"]["snr_db"] == pytest.approx(10 * np.log10(snr0))
    assert fb["flows"]["1"]["snr_db"] == pytest.approx(10 * np.log10(snr0 / 4))
    assert fb["snr_db"] == pytest.approx(10 * np.log10((snr0 + snr0 / 4) / 2))  # eq. (7): mean over users
    assert fb["flows"]["0"]["noise_snr_db"] == fb["noise_snr_db"] == pytest.approx(20.0)  # noise_var_est 0.01
    assert nodes.probe_feedback("bs", 5, {0}, [])["snr_db"] is None


class _Told(LinkSystem):
    """``link`` with the hook: keeps what ``encode_with_csi`` was given."""

    def encode_with_csi(self, items, csi, snr_db, batch, sinr_db=None):
        self.told = (csi, snr_db, batch, sinr_db)
        return self.encode(items, snr_db, batch)


def _tx(monkeypatch, feedback: dict) -> nodes.TxProgram:
    monkeypatch.setattr(nodes, "FEEDBACK_WAIT_S", 0.05)
    spec = {"name": "ue1", "system": "link", "params": {"n_frames": 1, "payload_bytes": 10}, "seed": 0,
            "mode": "stream", "flows": [1], "stream": 1, "n_streams": 2, "adapt": "closed_loop"}
    program = nodes.TxProgram(spec, SimpleNamespace(n_outputs=1))
    program.feedback = SimpleNamespace(latest=feedback)
    return program


def test_the_encoder_is_told_its_fed_back_column_or_the_nominal_snr(monkeypatch):
    fb = nodes.probe_feedback("bs", 2, {0, 1}, [_frame(0, 2), _frame(1, 2, h=H0 / 2)])
    program = _tx(monkeypatch, {"bs": fb})
    program.system = _Told({"n_frames": 1, "payload_bytes": 10})
    reply, _ = program.encode({"items": [], "snr_db": 7.0, "batch": 2}, {})
    csi, snr_db, batch, sinr_db = program.system.told
    assert sinr_db == 13.5  # flow 1's probe stream
    assert csi.dtype == np.complex128 and np.allclose(csi, H0 / 2) and (snr_db, batch) == (fb["noise_snr_db"], 2)
    assert (reply["csi_from"], reply["csi_snr_db"], reply["csi"]) == ("probe", fb["noise_snr_db"], fb["flows"]["1"]["csi"])
    reply, _ = program.encode({"items": [], "snr_db": 7.0, "batch": 3}, {})  # no feedback on batch 3's probe
    assert program.system.told == (None, 7.0, 3, None) and (reply["csi_from"], reply["csi"]) == ("nominal", None)
    lost = nodes.probe_feedback("bs", 4, {0, 1}, [_frame(0, 4)])  # this TX's probe was lost
    program.feedback.latest = {"bs": lost}
    assert program.encode({"items": [], "snr_db": 7.0, "batch": 4}, {})[0]["csi_from"] == "nominal"
    plain = _tx(monkeypatch, {"bs": fb})  # without the hook: encode with the fed-back SNR
    assert plain.encode({"items": [], "snr_db": 7.0, "batch": 2}, {})[0]["csi_snr_db"] == fb["noise_snr_db"]


def test_the_probe_is_this_tx_stream_of_a_short_k_stream_frame(monkeypatch):
    program = _tx(monkeypatch, {})
    reply, _ = program.probe({"batch": 6})
    job = nodes.probe_job(1, 6)
    wave = frame_stream(job, 1, 2, payload_symbols(job))
    assert reply["samples"] == wave.size + GAP_SAMPLES and program.probing
    np.testing.assert_array_equal(program.pending[0, : wave.size], wave)
