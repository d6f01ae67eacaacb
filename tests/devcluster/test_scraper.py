from hoststate.devcluster.scraper import parse, series, total

EXPOSITION = """# TYPE apiserver_flowcontrol_request_wait_duration_seconds histogram
apiserver_flowcontrol_request_wait_duration_seconds_count{flow_schema="leader-election",name="x",priority_level="leader-election"} 4
# TYPE up gauge
up 1
"""


def test_a_label_called_name_is_a_label() -> None:
    samples = parse(EXPOSITION)
    key = series(
        "apiserver_flowcontrol_request_wait_duration_seconds_count",
        flow_schema="leader-election",
        name="x",
        priority_level="leader-election",
    )
    assert samples[key] == 4
    assert samples["up"] == 1
    assert total(samples, "apiserver_flowcontrol_request_wait_duration_seconds_count") == 4
