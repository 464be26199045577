"""The control plane: requests answered, errors reported without killing the node, messages
without this run's token refused and counted, a silent node named, and per-user rows that
fail with null metrics instead of numbers."""
import threading

import numpy as np
import pytest

from testbed.config.scenario import Scenario
from testbed.config.yaml_io import validate
from testbed.errors import ProcessError
from testbed.radios.virtual import endpoint, free_tcp_port
from testbed.runner.control import ControlClient, ControlServer, new_token
from testbed.runner.results import QUALITY, Results, UserBatch


@pytest.fixture
def server():
    address, token = endpoint(free_tcp_port()), new_token()
    srv = ControlServer(address, token)

    def handler(msg, arrays):
        if msg["cmd"] == "boom":
            raise ValueError("no such thing")
        return {"echo": msg["cmd"], "sum": float(arrays["x"].sum()) if "x" in arrays else None}, {"y": np.ones(3)}

    thread = threading.Thread(target=srv.serve, args=(handler,), daemon=True)
    thread.start()
    yield srv, address, token
    srv.stop.set()
    thread.join(timeout=5)


def test_a_request_is_answered_with_its_arrays(server):
    _, address, token = server
    client = ControlClient("node", address, token)
    reply, arrays = client.request("hello", 5.0, arrays={"x": np.arange(4.0)})
    assert reply == {"echo": "hello", "sum": 6.0} and np.array_equal(arrays["y"], np.ones(3))
    client.close()


def test_a_handler_error_is_reported_and_the_node_keeps_serving(server):
    _, address, token = server
    client = ControlClient("node", address, token)
    with pytest.raises(ProcessError, match="node node: ValueError: no such thing"):
        client.request("boom", 5.0)
    assert client.request("again", 5.0)[0]["echo"] == "again"
    client.close()


def test_a_message_without_the_run_token_is_refused_and_counted(server):
    srv, address, _ = server
    intruder = ControlClient("node", address, "not-the-token")
    with pytest.raises(ProcessError, match="refused"):
        intruder.request("stop", 5.0)
    assert srv.refused == 1 and not srv.stop.is_set()
    intruder.close()


def test_a_node_that_never_answers_is_named():
    client = ControlClient("ue7", endpoint(free_tcp_port()), new_token())
    with pytest.raises(ProcessError, match="node ue7 did not answer within 0.3 s"):
        client.request("hello", 0.3)
    with pytest.raises(ProcessError, match="node ue7 died"):
        client.request("hello", 5.0, alive=lambda: False)
    client.close()


def test_a_failed_batch_makes_the_row_failed_with_null_metrics():
    scenario = validate(Scenario, {"name": "t", "system": "link", "topology": {
        "nodes": [{"name": "bs", "role": "tx"}, {"name": "ue0", "role": "rx"}],
        "users": [{"name": "u0", "tx": "bs", "rx": "ue0"}],
        "links": [{"tx": "bs", "rx": "ue0", "snr_db": 10.0}]}}, "t")
    results = Results(scenario.network(), {"u0": "qpsk+none"})
    point = {"bs->ue0": 10.0}
    ok = {"ber": 0.01, "bler": 0.0, "frames_sent": 5, "frames_received": 5, "frames_lost": 0, "csi_snr_db": 10.0}
    results.add(0, point, UserBatch("u0", metrics=ok))
    results.add(1, point, UserBatch("u0", metrics=ok))
    results.add(1, point, UserBatch("u0", failed="process ue0 died with exit code -9"))
    good, bad = results.rows()
    assert good["status"] == "ok" and good["ber"] == 0.01 and good["frames_received"] == 5
    assert bad["status"] == "failed" and bad["reason"].startswith("process ue0 died")
    assert all(bad[key] is None for key in QUALITY) and bad["frames_received"] is None
    assert bad["batches"] == 2
