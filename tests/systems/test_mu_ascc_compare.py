"""MU-ASCC's results script: the schemes on measured-style tables, the fixed-rate ZF-WF
benchmark's budget rule, the claim arithmetic and the tables read from the fit files."""
import json

import numpy as np
import pytest

from testbed.optim.mu_ascc import paper_instance
from testbed.errors import ConfigError
from testbed.systems.mu_ascc import compare, tables


@pytest.fixture(scope="module")
def paper_tables():
    return paper_instance().distortion_models


def test_fixed_rate_benchmark_takes_the_largest_codec_within_its_code_rate(paper_tables):
    base = compare.problem(paper_tables, 3.0, 0.0356, 256)
    sol = compare.zf_wf_fixed(base, 256)
    for user, code_rate in enumerate(compare.FIXED_CODE_RATES_BPCU):
        cap = 3 * 0.0356 * (1, compare.SU_RATIO_FACTOR)[user] * code_rate
        rates = paper_tables[user].rates_bpp
        assert sol.source_rates_bpp[user] == rates[rates <= cap].max()
        assert sol.code_rates_bpcu[user] == code_rate
    assert np.sum(sol.powers_w) == pytest.approx(3.0)


def test_fixed_rate_benchmark_is_infeasible_when_no_codec_fits(paper_tables):
    assert compare.zf_wf_fixed(compare.problem(paper_tables, 3.0, 0.001, 256), 256) is None
    assert compare.row(None) == {"status": "infeasible", "weighted_distortion": None}


def test_mu_ascc_is_no_worse_than_either_zf_wf_benchmark(paper_tables):
    base = compare.problem(paper_tables, 10 ** 0.8, 0.0356, 256)
    ours = compare.solve(base, "mu-ascc-best", 256).weighted_distortion
    for scheme in ("zf-wf-fixed", "zf-wf-adaptive"):
        assert ours <= compare.solve(base, scheme, 256).weighted_distortion + 1e-9
    with pytest.raises(ValueError, match="scheme='bpg'"):
        compare.solve(base, "bpg", 256)


def test_claims_compare_mu_ascc_with_the_fixed_benchmark_at_8_dbw():
    rows = [{"power_dbw": 8, "blocklength": 256, "scheme": "mu-ascc", "weighted_distortion": 0.06},
            {"power_dbw": 8, "blocklength": 256, "scheme": "zf-wf-fixed", "weighted_distortion": 0.1},
            {"power_dbw": 8, "blocklength": 4096, "scheme": "mu-ascc", "weighted_distortion": 0.2},
            {"power_dbw": 8, "blocklength": 4096, "scheme": "zf-wf-fixed", "weighted_distortion": None}]
    found = compare.claims(rows)
    by_length = {256: found[0], 4096: found[1]}
    assert found[-1]["scheme"] == "mu-ascc-ldpc" and found[-1]["holds"] is None  # no practical rows given
    assert by_length[256]["measured_reduction"] == pytest.approx(0.4) and by_length[256]["holds"] is True
    assert by_length[4096]["measured_reduction"] is None and by_length[4096]["holds"] is None


def test_measured_tables_read_both_fit_files_and_skip_failed_fits(tmp_path):
    fit = {"source_distortion": 0.1, "channel_distortion": 0.5, "slope_per_decade": 2.0,
           "threshold_log10_ber": -4.0, "r_squared": 0.99}
    data = {"codecs": [{"codec": f"d{r}", "rate_bpp": r, "fits": {"msssim_distortion": {**fit, "source_distortion": d}}}
                       for r, d in ((0.5, 0.1), (0.2, 0.15))]
            + [{"codec": "d0.9", "rate_bpp": 0.9, "fits": {"msssim_distortion": {"error": "no convergence"}}}]}
    semantic = {"codecs": [{"codec": f"s{r}", "rate_bpp": r, "fit": fit} for r in (0.3, 0.6)]}
    (tmp_path / "mu_ascc_distortion.json").write_text(json.dumps(data))
    (tmp_path / "mu_ascc_semantic.json").write_text(json.dumps(semantic))
    du, su = compare.measured_tables(tmp_path)
    assert du.rates_bpp.tolist() == [0.2, 0.5] and du.source_distortion.tolist() == [0.15, 0.1]
    assert su.rates_bpp.tolist() == [0.3, 0.6]
    models = tmp_path / "models"
    models.mkdir()
    for name in ("d0.2", "d0.5", "s0.3"):
        (models / f"{name}.analysis.onnx").write_bytes(b"")
    with pytest.raises(ConfigError, match="fewer than 2 fitted codecs for semantic"):
        tables.main(["--results", str(tmp_path), "--models", str(models)])
    (models / "s0.6.analysis.onnx").write_bytes(b"")
    (models / "d0.5.analysis.onnx").unlink()
    (models / "d0.9.analysis.onnx").write_bytes(b"")  # exported, but its fit failed
    with pytest.raises(ConfigError, match="for data"):
        tables.main(["--results", str(tmp_path), "--models", str(models)])
    (models / "d0.5.analysis.onnx").write_bytes(b"")
    tables.main(["--results", str(tmp_path), "--models", str(models)])
    loaded = tables.load_tables(str(models / "tables.json"))
    assert [e["name"] for e in loaded["data"]] == ["d0.2", "d0.5"] and loaded["data"][0]["r_squared"] == 0.99


def test_a_table_file_of_another_kind_is_refused(tmp_path):
    bad = tmp_path / "tables.json"
    bad.write_text(json.dumps({"kind": "bler-table", "roles": {}}))
    with pytest.raises(ConfigError, match="is not a MU-ASCC codec table"):
        tables.load_tables(str(bad))
    with pytest.raises(ConfigError, match="is not a file"):
        tables.load_tables(str(tmp_path / "missing.json"))
