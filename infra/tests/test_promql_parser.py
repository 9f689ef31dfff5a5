"""Unit tests of the metric-name extractor used by test_metric_refs.py."""

from promql import base_name, exported_names, metric_names


def test_simple_selectors_and_functions():
    assert metric_names('sum by (pod) (rate(mc_x_total{job="a",le="0.5"}[5m]))') == {"mc_x_total"}
    assert metric_names("absent(up{job=\"meeting-controller\"} == 1)") == {"up"}


def test_binary_ops_grouping_and_keywords():
    e = ("sum by (namespace, pod) (rate(a_total[5m])) / on (pod) group_left (node) "
         "sum without (shard) (b) > 0.01 and c unless bool d offset 5m")
    assert metric_names(e) == {"a_total", "b", "c", "d"}


def test_histogram_quantile_and_recording_rules():
    e = "histogram_quantile(0.95, sum by (le) (rate(mc_h_bucket{pod=~\"$pod\"}[$__rate_interval])))"
    assert metric_names(e) == {"mc_h_bucket"}
    assert metric_names("job:mc_slow:ratio_rate1h / 0.05") == {"job:mc_slow:ratio_rate1h"}
    assert metric_names("1 - avg_over_time(job:x:ratio[30d]) / 0.01") == {"job:x:ratio"}


def test_strings_with_braces_and_grafana_label_values():
    assert metric_names('m{a=~"x{1}|y"}') == {"m"}
    assert metric_names('label_values(mc_build_info{job="x"}, pod)') == {"mc_build_info"}
    assert metric_names("${datasource}") == set()


def test_base_name_and_exposition_parsing():
    assert base_name("a_bucket") == "a" and base_name("a_total") == "a_total"
    text = "# HELP m_total help\n# TYPE m_total counter\nm_total{a=\"1\"} 3\nh_bucket{le=\"1\"} 0\n"
    assert exported_names(text) == {"m_total", "h_bucket"}
