"""The bench's peer harness: gr-digital's OFDM receiver and ours both receive the packets they are
timed on (a rate of a receiver that drops everything would mean nothing). No timing asserted."""
from testbed.bench.gr_ofdm_bench import bench_gr_ofdm


def test_both_receivers_deliver_the_packets_they_are_timed_on():
    result = bench_gr_ofdm(n_packets=20)
    assert result["gr_delivered"] >= 0.9 and result["ours_frames"] == 1.0
    assert result["gr_sps"] > 0 and result["ours_sps"] > 0
